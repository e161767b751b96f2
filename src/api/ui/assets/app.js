// The web view's one script, and all it does: copy buttons. Everything works without it.
document.documentElement.classList.add("js");
document.addEventListener("click", function (e) {
  var b = e.target.closest("button.copy");
  if (!b) return;
  navigator.clipboard.writeText(b.getAttribute("data-copy")).then(function () {
    b.textContent = "copied";
  });
});
