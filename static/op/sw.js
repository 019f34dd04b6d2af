// The sales point app's service worker (served as /op/sw.js, scope /op/): the selling pages and their assets
// load from the cache when there is no network. Sales themselves live in IndexedDB (sell.js), never here.
"use strict";
var CACHE = "shop-op-v2";
var ASSETS = [
  "/op/",
  "/static/op/sell.js",
  "/static/op/manifest.webmanifest",
  "/static/js/shop.js",
  "/static/css/shop.css",
  "/static/css/print.css",
  "/static/vendor/pico/pico.green.min.css",
  "/static/favicon.svg"
];

self.addEventListener("install", function (event) {
  event.waitUntil(caches.open(CACHE).then(function (cache) {
    // one by one: an asset that cannot be fetched now (offline at install) does not keep the others out
    return Promise.all(ASSETS.map(function (url) { return cache.add(url).catch(function () {}); }));
  }).then(function () { return self.skipWaiting(); }));
});

self.addEventListener("activate", function (event) {
  event.waitUntil(caches.keys().then(function (names) {
    return Promise.all(names.filter(function (n) { return n !== CACHE; }).map(function (n) { return caches.delete(n); }));
  }).then(function () { return self.clients.claim(); }));
});

function fromNetworkThenCache(request) {
  return fetch(request).then(function (response) {
    // a page that answered with the login form (a redirect) is not the selling page: never cache it over it
    if (response.ok && !response.redirected) {
      var copy = response.clone();
      caches.open(CACHE).then(function (cache) { cache.put(request, copy); });
    }
    return response;
  }).catch(function () {
    return caches.match(request, { ignoreSearch: true }).then(function (hit) {
      return hit || new Response("offline", { status: 503, headers: { "Content-Type": "text/plain; charset=utf-8" } });
    });
  });
}

self.addEventListener("fetch", function (event) {
  var request = event.request;
  if (request.method !== "GET") return;  // sales are sent by the page, which keeps them until the server answers
  var url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (url.pathname.slice(-11) === "/state.json") return;  // always the server's; the page falls back to IndexedDB
  if (url.pathname.indexOf("/static/") === 0) {
    event.respondWith(caches.match(request).then(function (hit) { return hit || fromNetworkThenCache(request); }));
    return;
  }
  if (url.pathname.indexOf("/op/") === 0) event.respondWith(fromNetworkThenCache(request));
});
