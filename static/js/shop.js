// The shop's small page helpers (served by the shop itself; the CSP allows no inline script).
// Everything here is an improvement on pages that also work without script.
(function () {
  "use strict";

  // Quantity steppers: − and + beside a number box.
  document.addEventListener("click", function (event) {
    var button = event.target.closest(".stepper .step");
    if (!button) return;
    var input = button.parentElement.querySelector("input");
    var min = input.min === "" ? 0 : parseInt(input.min, 10);
    var max = input.max === "" ? Infinity : parseInt(input.max, 10);
    var value = parseInt(input.value, 10);
    if (isNaN(value)) value = min;
    value = Math.min(max, Math.max(min, value + parseInt(button.dataset.step, 10)));
    input.value = String(value);
    input.dispatchEvent(new Event("input", { bubbles: true }));
    input.dispatchEvent(new Event("change", { bubbles: true }));
  });

  // The cart saves a changed quantity as it changes; checkout sends what is on screen anyway.
  var cart = document.querySelector("form[data-autosave]");
  if (cart) {
    var timer = null;
    var pending = null;
    var status = cart.querySelector("[data-autosave-status]");
    var total = cart.querySelector("[data-cart-total]");

    var save = function () {
      timer = null;
      var body = new FormData(cart);
      pending = fetch(cart.dataset.autosave, {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "Accept": "application/json" }
      }).then(function (response) {
        return response.json().then(function (answer) {
          if (total && answer.total) total.textContent = answer.total;
          Object.keys(answer.lines || {}).forEach(function (id) {
            var row = cart.querySelector('tr[data-line="' + id + '"]');
            if (!row) return;
            var line = answer.lines[id];
            row.querySelector("[data-line-total]").textContent = line.total;
            var short = row.querySelector("[data-short]");
            if (short) short.hidden = !line.short;
          });
          cart.querySelectorAll("tr[data-line]").forEach(function (row) {
            if (!(row.dataset.line in (answer.lines || {}))) {
              row.querySelector("[data-line-total]").textContent = "—";
            }
          });
          if (status) status.textContent = answer.message || "";
        });
      }).catch(function () {
        if (status) status.textContent = status.dataset.offline || "";
      }).finally(function () { pending = null; });
    };

    cart.addEventListener("input", function (event) {
      if (!event.target.name || event.target.name.indexOf("qty-") !== 0) return;
      if (status) status.textContent = "…";
      if (timer) clearTimeout(timer);
      timer = setTimeout(save, 400);
    });
    var update = cart.querySelector(".update-button");
    if (update) update.hidden = true;  // saved as typed; the button is for pages without script
  }

  // Sales recorded at a sales point and not yet sent (sell.js keeps them in IndexedDB): while any wait, the
  // phone refuses to log out, and the day's close says to send them first.
  function waitingSales() {
    if (!window.indexedDB) return Promise.resolve(0);
    return new Promise(function (resolve) {
      var open = indexedDB.open("shop-point-sales", 1);
      open.onupgradeneeded = function () {  // the same stores as sell.js
        var db = open.result;
        db.createObjectStore("sales", { keyPath: "id" }).createIndex("point", "point_id");
        db.createObjectStore("meta", { keyPath: "key" });
      };
      open.onerror = function () { resolve(0); };
      open.onsuccess = function () {
        var all = open.result.transaction("sales").objectStore("sales").getAll();
        all.onsuccess = function () {
          resolve(all.result.filter(function (s) { return s.state === "waiting"; }).length);
        };
        all.onerror = function () { resolve(0); };
      };
    });
  }

  document.addEventListener("submit", function (event) {
    var logout = event.target.closest("form[data-logout]");
    if (!logout || logout.dataset.checked) return;
    event.preventDefault();
    waitingSales().then(function (n) {
      if (n > 0) {
        window.alert((logout.dataset.unsent || "").replace("{n}", n));
        return;
      }
      logout.dataset.checked = "1";
      logout.submit();
    });
  });

  var unsent = document.querySelector("[data-unsent-warning]");
  if (unsent) waitingSales().then(function (n) { unsent.hidden = n === 0; });

  // A table wider than its box scrolls inside the box, never the page: say so above it, and keep saying so
  // truthfully as the screen turns (the box's shaded edges show which way there is more).
  function markScrollingTables() {
    var words = document.body.dataset.scrollHint || "← →";
    document.querySelectorAll(".table-wrap").forEach(function (box) {
      var scrolls = box.scrollWidth > box.clientWidth + 1;
      var hint = box.previousElementSibling;
      var hinted = hint && hint.classList.contains("scroll-hint");
      box.classList.toggle("scrolls", scrolls);
      if (scrolls && !hinted) {
        hint = document.createElement("p");
        hint.className = "scroll-hint";
        hint.setAttribute("aria-hidden", "true");
        hint.textContent = words;
        box.parentNode.insertBefore(hint, box);
      } else if (!scrolls && hinted) {
        hint.remove();
      }
    });
  }
  markScrollingTables();
  window.addEventListener("resize", markScrollingTables);
  window.addEventListener("load", markScrollingTables);
  document.addEventListener("shop:table-changed", markScrollingTables);

  // A button that prints the page.
  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-print]")) window.print();
  });

  // A button that asks first: data-confirm="question".
  document.addEventListener("submit", function (event) {
    var asking = event.submitter && event.submitter.dataset.confirm;
    if (asking && !window.confirm(asking)) event.preventDefault();
  });
})();
