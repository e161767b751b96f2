// The emulated browser surface the page's scripts run against. `__page` (what the page's
// markup and the visitor say) and the natives `__nav(kind, url)`, `__defer(reason, what)` are
// set by the engine first (and `__url`, `__write`, `__module`: URL parsing, markup written,
// a part of the surface evaluated when first needed). Everything not modelled here is a trap: reading it, or asking
// whether it exists, defers the page to Chromium (the engine answers only when sure).
var __hoptrace = (function (P, nav, deferTo, parseUrl, writeMarkup, loadModule) {
  'use strict';
  var G = globalThis;
  function defer(reason, what) {
    deferTo(reason, what);
    throw new Error('hoptrace: ' + reason + ': ' + what);
  }
  function unknown(what) {
    defer('unmodelled', what);
  }
  // An object whose unknown properties are traps (writes are kept: they change nothing
  // the engine reads).
  function strict(target, name) {
    return new Proxy(target, {
      get: function (t, k, r) {
        if (typeof k === 'symbol' || k in t) return Reflect.get(t, k, r);
        unknown(name + '.' + k);
      },
      has: function (t, k) {
        if (typeof k === 'symbol' || k in t) return true;
        unknown(name + '.' + k);
      },
    });
  }

  // Names a browser has and this surface does not: a global the page reads or tests that is
  // neither its own nor modelled ends here.
  var proto = Object.getPrototypeOf(G);
  Object.setPrototypeOf(G, new Proxy(proto, {
    get: function (t, k, r) {
      if (typeof k === 'symbol' || k in t) return Reflect.get(t, k, r);
      unknown('window.' + k);
    },
    has: function (t, k) {
      if (typeof k === 'symbol' || k in t) return true;
      unknown('window.' + k);
    },
  }));

  // Virtual time: timers fire in order of their due time, without waiting.
  var now = 0, seq = 0, queue = [], live = 0, MAX_TIMERS = 10000, fired = 0;
  function task(fn, args) {
    if (typeof fn === 'function') fn.apply(G, args);
    else (0, eval)(String(fn));
  }
  function addTimer(fn, delay, args, repeat) {
    if (live >= MAX_TIMERS) defer('timers', 'more than ' + MAX_TIMERS + ' timers');
    var d = Math.max(0, Number(delay) || 0);
    seq += 1;
    live += 1;
    queue.push({ id: seq, due: now + d, order: seq, fn: fn, args: args, every: repeat ? Math.max(d, 1) : 0 });
    return seq;
  }
  function clearTimer(id) {
    for (var i = 0; i < queue.length; i++) {
      if (queue[i].id === id) { queue.splice(i, 1); live -= 1; return; }
    }
  }
  function slice(a, from) { return Array.prototype.slice.call(a, from); }
  // application/x-www-form-urlencoded, as a form or URLSearchParams writes it.
  function formEncode(v) {
    return encodeURIComponent(String(v)).replace(/%20/g, '+').replace(/[!'()~]/g, function (c) {
      return '%' + c.charCodeAt(0).toString(16).toUpperCase();
    });
  }

  var listeners = { DOMContentLoaded: [], load: [] };
  var ignored = ['click', 'dblclick', 'mousedown', 'mouseup', 'mousemove', 'mouseover', 'mouseout',
    'mouseenter', 'mouseleave', 'keydown', 'keyup', 'keypress', 'touchstart', 'touchend',
    'touchmove', 'submit', 'change', 'input', 'focus', 'blur', 'contextmenu', 'wheel', 'scroll',
    'resize', 'copy', 'paste'];
  function listen(where) {
    return function (type, fn) {
      if (type === 'DOMContentLoaded' || type === 'load') {
        if (where === 'element') return;
        if (type === 'DOMContentLoaded' || where === 'window') listeners[type].push(fn);
        return;
      }
      if (ignored.indexOf(type) >= 0) return; // needs a visitor's hand: never happens
      unknown(where + '.addEventListener ' + type);
    };
  }

  // location, on the page's own URL.
  // In a frame (`P.top`: the top page's URL), the frame's own location is the frame's: its
  // navigation is no hop and not modelled; `top` and `parent` are the top page, which a
  // same-origin frame may send elsewhere (relative to the frame's URL).
  var framed = typeof P.top === 'string';
  function go(url) {
    if (framed) defer('frame', 'a frame navigating itself');
    nav('js', String(url));
  }
  function goTop(url) { nav('js', String(url), '', P.href); }
  var loc = strict({
    get href() { return P.href; }, set href(v) { go(v); },
    protocol: P.protocol, host: P.host, hostname: P.hostname, port: P.port,
    pathname: P.pathname, search: P.search, hash: P.hash, origin: P.origin,
    assign: function (u) { go(u); },
    replace: function (u) { go(u); },
    reload: function () { defer('unmodelled', 'location.reload'); },
    toString: function () { return P.href; },
  }, 'location');

  var cookies = [];
  function cookieString() { return cookies.map(function (c) { return c[0] + '=' + c[1]; }).join('; '); }
  function setCookie(v) {
    var pair = String(v).split(';')[0], eq = pair.indexOf('=');
    var name = (eq < 0 ? '' : pair.slice(0, eq)).trim(), value = (eq < 0 ? pair : pair.slice(eq + 1)).trim();
    for (var i = 0; i < cookies.length; i++) if (cookies[i][0] === name) { cookies[i][1] = value; return; }
    cookies.push([name, value]);
  }

  // Elements: those the markup names, and those the script makes.
  var written = '', loaded = false;
  function element(e) {
    var attrs = {};
    Object.keys(e.attrs || {}).forEach(function (k) { attrs[k] = e.attrs[k]; });
    var el = {
      tagName: e.tag.toUpperCase(), nodeName: e.tag.toUpperCase(), nodeType: 1,
      id: attrs.id || '', className: attrs['class'] || '', name: attrs.name || '',
      type: attrs.type || '', value: attrs.value || '', checked: 'checked' in attrs,
      href: attrs.href || '', src: attrs.src || '', action: attrs.action || '',
      method: (attrs.method || 'get').toLowerCase(), target: attrs.target || '',
      textContent: e.text || '', innerText: e.text || '', innerHTML: e.text || '',
      style: {}, dataset: {}, disabled: false, hidden: false, title: attrs.title || '',
      parentNode: null, children: [], childNodes: [], fields: e.fields || [],
      getAttribute: function (k) { k = String(k).toLowerCase(); return k in attrs ? attrs[k] : null; },
      setAttribute: function (k, v) { k = String(k).toLowerCase(); attrs[k] = String(v); if (k in el && typeof el[k] !== 'function') el[k] = String(v); },
      removeAttribute: function (k) { delete attrs[String(k).toLowerCase()]; },
      hasAttribute: function (k) { return String(k).toLowerCase() in attrs; },
      appendChild: function (c) { return c; }, removeChild: function (c) { return c; },
      insertBefore: function (c) { return c; },
      addEventListener: listen('element'), removeEventListener: function () {},
      focus: function () {}, blur: function () {},
      click: function () {
        if (el.tagName === 'A' && el.href) go(el.href);
        else unknown('click on ' + el.tagName.toLowerCase());
      },
      submit: function () {
        if (el.tagName !== 'FORM') unknown('submit of ' + el.tagName.toLowerCase());
        if (el.target && el.target !== '_self' && el.target !== '_top') defer('unmodelled', 'form target ' + el.target);
        var method = String(el.method).toLowerCase();
        if (method !== 'get' && method !== 'post') defer('unmodelled', 'form method ' + method);
        var enctype = String(attrs.enctype || 'application/x-www-form-urlencoded').toLowerCase();
        if (method === 'post' && enctype !== 'application/x-www-form-urlencoded') defer('unmodelled', 'form enctype ' + enctype);
        var q = el.fields.map(function (f) {
          var input = byName[f[0]];
          var v = input ? input.value : f[1];
          return formEncode(f[0]) + '=' + formEncode(v);
        }).join('&');
        var action = el.action || P.href.split('#')[0];
        // POST sends the fields as its body to the action as it stands; GET puts them in
        // place of the action's query.
        if (method === 'post') nav('post', action, q);
        else go(action.split('?')[0].split('#')[0] + '?' + q);
      },
    };
    return strict(el, e.tag);
  }
  var byId = {}, byName = {}, forms = [], all = [];
  function adopt(e) {
    var el = element(e);
    all.push([e.tag, el]);
    if (e.attrs.id && !(e.attrs.id in byId)) byId[e.attrs.id] = el;
    if (e.attrs.name && e.tag === 'input' && !(e.attrs.name in byName)) byName[e.attrs.name] = el;
    if (e.tag === 'form') forms.push(el);
  }
  P.elements.forEach(adopt);
  // document.write while the page is parsed: the markup joins the page, its elements can
  // be reached and its scripts run there and then (as a browser runs them).
  function write(text) {
    if (loaded) defer('unmodelled', 'document.write after load');
    written += text;
    if (text.indexOf('<') < 0) return;
    var got = JSON.parse(writeMarkup(text));
    got.elements.forEach(adopt);
    // Global code, as a script's (an indirect eval: the engine's own way in from a native).
    got.scripts.forEach(function (code) { (0, eval)(code); });
  }
  function byTag(tag) {
    tag = String(tag).toLowerCase();
    if (tag !== 'form' && tag !== 'a' && tag !== 'input' && tag !== 'iframe' && tag !== 'script') {
      unknown('document.getElementsByTagName ' + tag);
    }
    return all.filter(function (p) { return p[0] === tag; }).map(function (p) { return p[1]; });
  }
  function query(sel) {
    sel = String(sel).trim();
    var m = /^#([A-Za-z0-9_-]+)$/.exec(sel);
    if (m) return [byId[m[1]]].filter(Boolean);
    if (/^[a-z]+$/i.test(sel)) return byTag(sel);
    unknown('document.querySelector ' + sel);
  }
  var body = element({ tag: 'body', attrs: {}, text: '' });
  var head = element({ tag: 'head', attrs: {}, text: '' });
  var doc = strict({
    get location() { return loc; }, set location(v) { go(v); },
    get cookie() { return cookieString(); }, set cookie(v) { setCookie(v); },
    get readyState() { return loaded ? 'complete' : 'loading'; },
    title: P.title, referrer: '', URL: P.href, documentURI: P.href, domain: P.hostname,
    characterSet: 'UTF-8', charset: 'UTF-8', hidden: false, visibilityState: 'visible',
    body: body, head: head, documentElement: element({ tag: 'html', attrs: {}, text: '' }),
    forms: forms,
    getElementById: function (id) { return byId[String(id)] || null; },
    getElementsByName: function (n) { return byName[String(n)] ? [byName[String(n)]] : []; },
    getElementsByTagName: byTag,
    querySelector: function (s) { return query(s)[0] || null; },
    querySelectorAll: function (s) { return query(s); },
    createElement: function (t) { return element({ tag: String(t).toLowerCase(), attrs: {}, text: '' }); },
    createTextNode: function (t) { return { nodeType: 3, textContent: String(t) }; },
    write: function () { write(slice(arguments, 0).join('')); },
    writeln: function () { write(slice(arguments, 0).join('') + '\n'); },
    open: function () { defer('unmodelled', 'document.open'); },
    close: function () {},
    addEventListener: listen('document'), removeEventListener: function () {},
    hasFocus: function () { return true; },
  }, 'document');

  var n = P.navigator;
  var navigator = strict({
    userAgent: n.userAgent, appVersion: n.userAgent.replace(/^Mozilla\//, ''),
    appName: 'Netscape', appCodeName: 'Mozilla', product: 'Gecko', platform: n.platform,
    language: n.languages[0] || 'en-US', languages: n.languages, vendor: 'Google Inc.',
    cookieEnabled: true, onLine: true, webdriver: false, doNotTrack: null,
    maxTouchPoints: n.mobile ? 5 : 0, javaEnabled: function () { return false; },
  }, 'navigator');
  var screen = strict({
    width: n.screen[0], height: n.screen[1], colorDepth: 24, pixelDepth: 24,
  }, 'screen');
  var history = strict({
    length: 1, state: null,
    pushState: function () {}, replaceState: function () {},
    back: function () { defer('unmodelled', 'history.back'); },
    go: function () { defer('unmodelled', 'history.go'); },
  }, 'history');
  var noop = function () {};
  var console = { log: noop, info: noop, warn: noop, error: noop, debug: noop };

  // window.open: a new window is no navigation of this one (and Chromium here opens none:
  // it returns null); a target naming this window or the top one navigates it.
  function open(url, target) {
    var t = String(target === undefined ? '' : target).toLowerCase();
    if (url === undefined || url === null || String(url) === '') return null;
    if (t === '_self') { go(url); return G; }
    if (t === '_top' || t === '_parent') { if (framed) goTop(url); else go(url); return topWindow; }
    return null;
  }

  function define(name, get, set) {
    Object.defineProperty(G, name, { get: get, set: set || function (v) { Object.defineProperty(G, name, { value: v, writable: true, configurable: true }); }, configurable: true });
  }
  define('window', function () { return G; });
  define('self', function () { return G; });
  var topWindow = G;
  if (framed) {
    var topLocation = strict({
      get href() { return P.top; }, set href(v) { goTop(v); },
      assign: function (u) { goTop(u); },
      replace: function (u) { goTop(u); },
      toString: function () { return P.top; },
    }, 'top.location');
    topWindow = strict({
      get location() { return topLocation; }, set location(v) { goTop(v); },
    }, 'top');
    topWindow.window = topWindow;
    topWindow.self = topWindow;
    topWindow.top = topWindow;
    topWindow.parent = topWindow;
  }
  define('top', function () { return topWindow; });
  define('parent', function () { return topWindow; });
  define('frames', function () { return G; });
  define('location', function () { return loc; }, go);
  var values = {
    document: doc, navigator: navigator, screen: screen, history: history, console: console,
    innerWidth: n.viewport[0], innerHeight: n.viewport[1], devicePixelRatio: 1,
    name: '', closed: false, opener: null, length: P.frames || 0,
    setTimeout: function (f, d) { return addTimer(f, d, slice(arguments, 2), false); },
    setInterval: function (f, d) { return addTimer(f, d, slice(arguments, 2), true); },
    clearTimeout: clearTimer, clearInterval: clearTimer,
    addEventListener: listen('window'), removeEventListener: noop,
    open: open,
    onload: null,
  };
  // A frame's element belongs to the top page, which the frame's surface does not model.
  if (!framed) values.frameElement = null;
  Object.keys(values).forEach(function (k) {
    Object.defineProperty(G, k, { value: values[k], writable: true, configurable: true, enumerable: true });
  });
  Date.now = function () { return P.epoch + now; };
  // Parts only some pages use, evaluated when a script first names them.
  var urlApi = null;
  function lazy(name, load) {
    Object.defineProperty(G, name, {
      get: function () { var v = load(); Object.defineProperty(G, name, { value: v, writable: true, configurable: true }); return v; },
      set: function (v) { Object.defineProperty(G, name, { value: v, writable: true, configurable: true }); },
      configurable: true,
    });
  }
  ['URL', 'URLSearchParams'].forEach(function (name) {
    lazy(name, function () {
      if (!urlApi) urlApi = (0, eval)(loadModule('url'))({ parseUrl: parseUrl, formEncode: formEncode });
      return urlApi[name];
    });
  });

  return {
    // Markup document.write added while the page was parsed.
    written: function () { return written; },
    // Parsing done: DOMContentLoaded.
    parsed: function () {
      var dcl = listeners.DOMContentLoaded.slice();
      dcl.forEach(function (f) { task(f, [{ type: 'DOMContentLoaded' }]); });
    },
    // Everything loaded (frames too): load (listeners and <body onload>).
    loaded: function (onload) {
      loaded = true;
      var handlers = listeners.load.slice();
      if (typeof G.onload === 'function') handlers.push(G.onload);
      handlers.forEach(function (f) { task(f, [{ type: 'load' }]); });
      if (onload) (0, eval)(onload);
    },
    // When the next timer is due (virtual ms), or -1 when none is set.
    due: function () {
      var at = -1;
      for (var i = 0; i < queue.length; i++) if (at < 0 || queue[i].due < at) at = queue[i].due;
      return at;
    },
    // Runs the next timer due within `until` (virtual ms); false when none is.
    step: function (until) {
      if (queue.length === 0) return false;
      var at = 0;
      for (var i = 1; i < queue.length; i++) {
        if (queue[i].due < queue[at].due || (queue[i].due === queue[at].due && queue[i].order < queue[at].order)) at = i;
      }
      var t = queue[at];
      if (t.due > until) return false;
      now = t.due;
      if (t.every) { seq += 1; t.due = now + t.every; t.order = seq; } else { queue.splice(at, 1); live -= 1; }
      fired += 1;
      if (fired > MAX_TIMERS) defer('timers', 'more than ' + MAX_TIMERS + ' timer runs');
      task(t.fn, t.args);
      return true;
    },
    now: function () { return now; },
  };
})(__page, __nav, __defer, __url, __write, __module);
