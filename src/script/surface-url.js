// URL and URLSearchParams for the page's scripts, evaluated the first time a script names
// either (most pages never do, and every page pays for what the surface parses). `C`: what
// the surface shares with it (`parseUrl`, the native URL parser; `formEncode`).
(function (C) {
  'use strict';
  var parseUrl = C.parseUrl, formEncode = C.formEncode;
  // URLSearchParams: name-value pairs, application/x-www-form-urlencoded.
  function decodeForm(s) {
    s = s.replace(/\+/g, ' ');
    try { return decodeURIComponent(s); } catch (e) { return s; }
  }
  function URLSearchParams(init) {
    if (!(this instanceof URLSearchParams)) throw new TypeError("Failed to construct 'URLSearchParams'");
    var list = [], self = this, onChange = null;
    function load(init) {
      list = [];
      if (init === undefined || init === null) return;
      if (typeof init === 'object') {
        if (init instanceof URLSearchParams) { init.forEach(function (v, k) { list.push([k, v]); }); return; }
        if (Array.isArray(init)) { init.forEach(function (p) { list.push([String(p[0]), String(p[1])]); }); return; }
        Object.keys(init).forEach(function (k) { list.push([k, String(init[k])]); });
        return;
      }
      String(init).replace(/^\?/, '').split('&').forEach(function (pair) {
        if (!pair) return;
        var eq = pair.indexOf('=');
        list.push(eq < 0 ? [decodeForm(pair), ''] : [decodeForm(pair.slice(0, eq)), decodeForm(pair.slice(eq + 1))]);
      });
    }
    function changed() { if (onChange) onChange(self.toString()); }
    load(init);
    this.append = function (k, v) { list.push([String(k), String(v)]); changed(); };
    this['delete'] = function (k) { k = String(k); list = list.filter(function (p) { return p[0] !== k; }); changed(); };
    this.get = function (k) { k = String(k); for (var i = 0; i < list.length; i++) if (list[i][0] === k) return list[i][1]; return null; };
    this.getAll = function (k) { k = String(k); return list.filter(function (p) { return p[0] === k; }).map(function (p) { return p[1]; }); };
    this.has = function (k) { return this.get(k) !== null; };
    this.set = function (k, v) {
      k = String(k); v = String(v);
      var at = -1;
      list = list.filter(function (p, i) { if (p[0] !== k) return true; if (at < 0) { at = i; return true; } return false; });
      if (at < 0) list.push([k, v]); else list[at] = [k, v];
      changed();
    };
    this.sort = function () { list.sort(function (a, b) { return a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0; }); changed(); };
    this.forEach = function (f, that) { list.slice().forEach(function (p) { f.call(that, p[1], p[0], self); }); };
    this.keys = function () { return list.map(function (p) { return p[0]; })[Symbol.iterator](); };
    this.values = function () { return list.map(function (p) { return p[1]; })[Symbol.iterator](); };
    this.entries = function () { return list.map(function (p) { return [p[0], p[1]]; })[Symbol.iterator](); };
    this[Symbol.iterator] = this.entries;
    this.toString = function () { return list.map(function (p) { return formEncode(p[0]) + '=' + formEncode(p[1]); }).join('&'); };
    Object.defineProperty(this, 'size', { get: function () { return list.length; } });
    // A URL's own params follow its search, and change it.
    Object.defineProperty(this, '__bind', { value: function (reload, notify) { reload(load); onChange = notify; } });
  }

  // URL: parsed by the engine (the same parser as the chain's).
  function URL(input, base) {
    if (!(this instanceof URL)) throw new TypeError("Failed to construct 'URL'");
    var parts = JSON.parse(parseUrl(String(input), base === undefined ? undefined : String(base)));
    var self = this, params = new URLSearchParams(parts.search);
    function reparse(href) {
      parts = JSON.parse(parseUrl(href));
      params.__bind(function (load) { load(parts.search); }, setSearchFromParams);
    }
    // The href without its search and hash, which the URL serialiser puts last.
    function stem() { return parts.href.slice(0, parts.href.length - parts.hash.length - parts.search.length); }
    function setSearch(v) {
      v = String(v);
      reparse(stem() + (v === '' || v === '?' ? '' : (v.charAt(0) === '?' ? v : '?' + v)) + parts.hash);
    }
    function setSearchFromParams(q) { parts = JSON.parse(parseUrl(stem() + (q ? '?' + q : '') + parts.hash)); }
    params.__bind(function () {}, setSearchFromParams);
    Object.defineProperty(this, 'href', { get: function () { return parts.href; }, set: function (v) { reparse(String(v)); }, enumerable: true });
    ['protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'origin'].forEach(function (k) {
      Object.defineProperty(self, k, { get: function () { return parts[k]; }, enumerable: true });
    });
    Object.defineProperty(this, 'search', { get: function () { return parts.search; }, set: setSearch, enumerable: true });
    Object.defineProperty(this, 'hash', {
      get: function () { return parts.hash; },
      set: function (v) { v = String(v); reparse(parts.href.slice(0, parts.href.length - parts.hash.length) + (v === '' ? '' : (v.charAt(0) === '#' ? v : '#' + v))); },
      enumerable: true,
    });
    Object.defineProperty(this, 'searchParams', { get: function () { return params; }, enumerable: true });
    this.toString = function () { return parts.href; };
    this.toJSON = function () { return parts.href; };
  }

  return { URL: URL, URLSearchParams: URLSearchParams };
})
