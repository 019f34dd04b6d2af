// The sales point's selling page: works with no network. Each sale gets an id made here (a UUID) and a receipt
// number (point code – phone code – sequence), is kept in IndexedDB, and is sent when the network is there; the
// server keeps each id once, so sending again after a time-out never records a sale twice.
(function () {
  "use strict";
  var root = document.getElementById("sell");
  if (!root) return;
  var msg = root.dataset;
  var pointId = Number(root.dataset.point);
  var pointCode = root.dataset.code;
  var form = root.querySelector("[data-sale-form]");
  var state = null;       // what the server said the point holds (cached in IndexedDB for offline loads)
  var csrf = null;        // a fresh CSRF token comes with each state
  var syncing = false;

  // --- IndexedDB ------------------------------------------------------------------------------------------
  var dbPromise = new Promise(function (resolve, reject) {
    var open = indexedDB.open("shop-point-sales", 1);
    open.onupgradeneeded = function () {
      var db = open.result;
      var sales = db.createObjectStore("sales", { keyPath: "id" });
      sales.createIndex("point", "point_id");
      db.createObjectStore("meta", { keyPath: "key" });
    };
    open.onsuccess = function () { resolve(open.result); };
    open.onerror = function () { reject(open.error); };
  });

  function tx(stores, mode, work) {
    return dbPromise.then(function (db) {
      return new Promise(function (resolve, reject) {
        var t = db.transaction(stores, mode);
        var result;
        t.oncomplete = function () { resolve(result); };
        t.onerror = function () { reject(t.error); };
        t.onabort = function () { reject(t.error); };
        result = work(t);
      });
    });
  }

  function request(req) {
    return new Promise(function (resolve, reject) {
      req.onsuccess = function () { resolve(req.result); };
      req.onerror = function () { reject(req.error); };
    });
  }

  function getMeta(key) {
    return dbPromise.then(function (db) {
      return request(db.transaction("meta").objectStore("meta").get(key));
    }).then(function (row) { return row ? row.value : null; });
  }

  function putMeta(key, value) {
    return tx(["meta"], "readwrite", function (t) { t.objectStore("meta").put({ key: key, value: value }); });
  }

  function allSales() {
    return dbPromise.then(function (db) {
      return request(db.transaction("sales").objectStore("sales").index("point").getAll(pointId));
    });
  }

  // --- money and quantities: integers only ---------------------------------------------------------------
  function parseQuantity(text, decimals) {
    var raw = String(text || "").trim().replace("，", ".").replace(",", ".");
    var m = /^(\d{1,7})(?:\.(\d+))?$/.exec(raw);
    if (!m || (m[2] && m[2].length > decimals)) return null;
    var fraction = (m[2] || "").padEnd(decimals, "0");
    var value = parseInt(m[1] + fraction, 10);
    return value > 0 ? value : null;
  }

  function valueFen(quantity, priceFen, scale) {  // half-up to the fen, as the server (models_base.value_fen)
    var q = BigInt(quantity), p = BigInt(priceFen), s = BigInt(scale);
    return Number((2n * q * p + s) / (2n * s));
  }

  function yuan(fen) {
    var whole = Math.floor(fen / 100), cents = fen % 100;
    return "¥" + whole.toLocaleString("en-US") + "." + (cents < 10 ? "0" : "") + cents;
  }

  function showQuantity(quantity, product) {
    if (!product.decimals) return quantity + " " + product.unit;
    var s = product.scale;
    return Math.floor(quantity / s) + "." + String(quantity % s).padStart(product.decimals, "0") + " " + product.unit;
  }

  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function localDay(date) {
    var d = date || new Date();
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" + String(d.getDate()).padStart(2, "0");
  }

  // --- the point's data --------------------------------------------------------------------------------------
  function loadState() {
    return fetch(root.dataset.state, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (response.redirected || type.indexOf("application/json") === -1) throw { login: true };
        if (!response.ok) throw new Error("state " + response.status);
        return response.json();
      })
      .then(function (fresh) {
        csrf = fresh.csrf_token;
        delete fresh.csrf_token;
        state = fresh;
        setNet(true);
        return putMeta("state:" + pointId, fresh).then(function () { return true; });
      })
      .catch(function (err) {
        setNet(false, err && err.login);
        return getMeta("state:" + pointId).then(function (saved) {
          if (saved) state = saved;
          return false;
        });
      });
  }

  function ensureDevice() {
    return getMeta("device:" + pointId).then(function (code) {
      if (code || !csrf) return code;
      return fetch(root.dataset.device, { method: "POST", credentials: "same-origin",
                                          headers: { "X-CSRFToken": csrf, "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (answer) {
          if (!answer) return null;
          return putMeta("device:" + pointId, answer.code).then(function () { return answer.code; });
        })
        .catch(function () { return null; });
    }).then(function (code) {
      root.querySelector("[data-device-code]").textContent = code ? "-" + code : "";
      return code;
    });
  }

  function nextReceipt(device) {  // the sequence is counted in one IndexedDB transaction: no two sales share it
    var key = "seq:" + pointId;
    return tx(["meta"], "readwrite", function (t) {
      var store = t.objectStore("meta");
      var holder = {};
      store.get(key).onsuccess = function (e) {
        var n = (e.target.result ? e.target.result.value : 0) + 1;
        store.put({ key: key, value: n });
        holder.n = n;
      };
      return holder;
    }).then(function (holder) { return pointCode + "-" + device + "-" + String(holder.n).padStart(4, "0"); });
  }

  // --- the form ----------------------------------------------------------------------------------------------
  function grower() {
    var key = form.grower.value;
    return state && state.growers.filter(function (g) { return g.key === key; })[0];
  }

  function product() {
    var id = Number(form.product.value);
    return state && state.products.filter(function (p) { return p.id === id; })[0];
  }

  function permitToday(g) {
    var today = localDay();
    return (g.permits || []).filter(function (p) { return p.from <= today && today <= p.to; })[0];
  }

  function fillForm() {
    if (!state) {
      root.querySelector("[data-form-error]").textContent = msg.msgNoload;
      return;
    }
    var chosen = form.grower.value;
    form.grower.innerHTML = "";
    state.growers.forEach(function (g) {
      var option = document.createElement("option");
      option.value = g.key;
      var permit = permitToday(g);
      option.textContent = g.name + (permit ? " · " + permit.number : " · " + msg.msgNopermitShort);
      form.grower.appendChild(option);
    });
    if (chosen) form.grower.value = chosen;
    var chosenProduct = form.product.value;
    form.product.innerHTML = "";
    state.products.forEach(function (p) {
      var option = document.createElement("option");
      option.value = String(p.id);
      option.textContent = p.name + " · " + yuan(p.price_fen) + "/" + p.unit;
      form.product.appendChild(option);
    });
    var g = grower();
    if (chosenProduct) {
      form.product.value = chosenProduct;
    } else if (g) {
      var stocked = Object.keys(g.stock || {})[0];
      if (stocked) form.product.value = stocked;
    }
    update();
  }

  function waitingTaken(sales, g, p) {
    return sales.filter(function (s) {
      return s.state === "waiting" && s.product_id === p.id &&
        (s.household_id || null) === (g.household_id || null) && (s.enterprise_id || null) === (g.enterprise_id || null);
    }).reduce(function (sum, s) { return sum + s.quantity; }, 0);
  }

  var lastSales = [];
  var waitingNow = 0;

  function update() {
    var g = grower(), p = product();
    var error = root.querySelector("[data-form-error]");
    error.textContent = "";  // a refusal is about what is typed now; the last sale's warning stays (data-form-warning)
    if (!g || !p) return;
    var permit = permitToday(g);
    root.querySelector("[data-permit]").textContent = permit ? permit.number + " · " + permit.from + " — " + permit.to : msg.msgNopermit;
    root.querySelector("[data-qr-note]").textContent = g.qr_note ? "（" + g.qr_note + "）" : "";
    root.querySelector("[data-quantity-label]").textContent = p.decimals ? p.unit + "（0.1）" : p.unit;
    form.quantity.placeholder = p.decimals ? "12.3" : "5";
    form.quantity.inputMode = p.decimals ? "decimal" : "numeric";
    form.price.value = yuan(p.price_fen) + "/" + p.unit;
    var quantity = parseQuantity(form.quantity.value, p.decimals);
    root.querySelector("[data-amount]").textContent = quantity ? yuan(valueFen(quantity, p.price_fen, p.scale)) : "¥0.00";
    var left = (g.stock && g.stock[String(p.id)] || 0) - waitingTaken(lastSales, g, p);
    root.querySelector("[data-left]").textContent = "（" + showQuantity(Math.max(left, 0), p) + "）";
  }

  form.addEventListener("input", function () { warning.textContent = ""; update(); });
  form.addEventListener("change", update);
  var warning = root.querySelector("[data-form-warning]");

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var error = root.querySelector("[data-form-error]");
    var g = grower(), p = product();
    if (!g || !p) { error.textContent = msg.msgNoload; return; }
    if (!permitToday(g)) { error.textContent = msg.msgNopermit; return; }
    var quantity = parseQuantity(form.quantity.value, p.decimals);
    if (!quantity) { error.textContent = p.decimals ? msg.msgBadWeight : msg.msgBadCount; return; }
    ensureDevice().then(function (device) {
      if (!device) { error.textContent = msg.msgNoload; return null; }
      return nextReceipt(device).then(function (receipt) {
        var left = (g.stock && g.stock[String(p.id)] || 0) - waitingTaken(lastSales, g, p);
        var sale = {
          id: uuid(), receipt: receipt, point_id: pointId, household_id: g.household_id || null,
          enterprise_id: g.enterprise_id || null, product_id: p.id, quantity: quantity, unit_price_fen: p.price_fen,
          amount_fen: valueFen(quantity, p.price_fen, p.scale),
          payment: form.querySelector("input[name=payment]:checked").value,
          sold_at: new Date().toISOString(), state: "waiting",
          shown: { grower: g.name, quantity: showQuantity(quantity, p) }
        };
        return tx(["sales"], "readwrite", function (t) { t.objectStore("sales").add(sale); }).then(function () {
          form.quantity.value = "";
          form.querySelector("input[name=payment][value=cash]").checked = true;  // each sale starts from cash
          warning.textContent = quantity > left ? msg.msgShort : msg.msgRecorded.replace("{r}", receipt);
          warning.className = quantity > left ? "field-error" : "muted";
          return render().then(sync);
        });
      });
    });
  });

  // --- the list and the count ---------------------------------------------------------------------------------
  function render() {
    return allSales().then(function (sales) {
      lastSales = sales;
      var today = localDay();
      var shown = sales.filter(function (s) { return s.state === "waiting" || localDay(new Date(s.sold_at)) === today; })
        .sort(function (a, b) { return a.sold_at < b.sold_at ? 1 : -1; });
      var body = root.querySelector("[data-sales]");
      body.innerHTML = "";
      shown.forEach(function (s) {
        var row = document.createElement("tr");
        row.dataset.state = s.state;
        row.dataset.receipt = s.receipt;
        [s.receipt, s.shown.grower, s.shown.quantity, yuan(s.amount_fen),
         s.payment === "cash" ? msg.msgCash : msg.msgQr,
         { waiting: msg.msgWaiting, sent: msg.msgSent, checked: msg.msgChecked, flagged: msg.msgFlagged,
           refused: msg.msgRefused }[s.state] +
           (s.message ? "：" + s.message : "")].forEach(function (text, i) {
          var cell = document.createElement("td");
          if (i === 0 && s.order_id) {  // a posted sale's receipt, to show or print
            var link = document.createElement("a");
            link.href = root.dataset.receipt.replace("/0/", "/" + s.order_id + "/");
            link.textContent = text;
            cell.appendChild(link);
          } else {
            cell.textContent = text;
          }
          if (i === 3) cell.className = "num";
          row.appendChild(cell);
        });
        body.appendChild(row);
      });
      var waiting = sales.filter(function (s) { return s.state === "waiting"; }).length;
      waitingNow = waiting;
      root.querySelector("[data-waiting-count]").textContent = String(waiting);
      root.querySelector("[data-export]").hidden = waiting === 0;
      update();
      return waiting;
    });
  }

  function setNet(online, login) {
    var badge = root.querySelector("[data-net]");
    badge.textContent = login ? msg.msgLogin : online ? msg.msgOnline : msg.msgOffline;
    badge.className = "badge" + (online ? "" : " warn");
  }

  // --- sending -----------------------------------------------------------------------------------------------
  function sync() {
    if (syncing) return Promise.resolve();
    syncing = true;
    var status = root.querySelector("[data-sync-status]");
    return allSales().then(function (sales) {
      var waiting = sales.filter(function (s) { return s.state === "waiting"; }).slice(0, 200);
      if (!waiting.length) return null;
      return loadState().then(function (online) {
        if (!online || !csrf) return null;
        var payload = waiting.map(function (s) {
          return { id: s.id, receipt: s.receipt, point_id: s.point_id, household_id: s.household_id,
                   enterprise_id: s.enterprise_id, product_id: s.product_id, quantity: s.quantity,
                   unit_price_fen: s.unit_price_fen, amount_fen: s.amount_fen, payment: s.payment, sold_at: s.sold_at };
        });
        status.textContent = "…";
        return fetch(root.dataset.sync, {
          method: "POST", credentials: "same-origin", body: JSON.stringify({ sales: payload }),
          headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf }
        }).then(function (response) {
          if (!response.ok) throw new Error("sync " + response.status);
          return response.json();
        }).then(function (answer) {
          var byId = {};
          (answer.results || []).forEach(function (r) { byId[r.id] = r; });
          return tx(["sales"], "readwrite", function (t) {
            var store = t.objectStore("sales");
            waiting.forEach(function (s) {
              var r = byId[s.id];
              if (!r) return;  // not answered: stays waiting and is sent again
              s.state = r.status === "recorded" ? (r.message ? "checked" : "sent")
                : r.status === "flagged" ? "flagged" : "refused";
              s.message = r.message || null;  // what the server says of it, shown beside the sale
              s.order_id = r.order_id || null;
              store.put(s);
            });
          }).then(function () { status.textContent = ""; return loadState(); });
        });
      });
    }).catch(function () {
      status.textContent = "";
      setNet(false);
    }).then(function () {
      syncing = false;
      return render();
    }).then(function () { fillForm(); });
  }

  root.querySelector("[data-sync-now]").addEventListener("click", function () { sync(); });

  // --- keeping unsent sales safe ---------------------------------------------------------------------------------
  // Ask the browser to keep this site's data even when the phone runs short of space, and say whether it will.
  function askPersist() {
    var shown = root.querySelector("[data-persist]");
    if (!navigator.storage || !navigator.storage.persist) {
      shown.textContent = msg.msgPersistNo;
      shown.dataset.persisted = "0";
      return Promise.resolve(false);
    }
    return navigator.storage.persisted().then(function (already) {
      return already || navigator.storage.persist();
    }).then(function (granted) {
      shown.textContent = granted ? msg.msgPersistYes : msg.msgPersistNo;
      shown.dataset.persisted = granted ? "1" : "0";
      shown.className = granted ? "muted" : "persist-warn";
      return granted;
    }).catch(function () { shown.textContent = msg.msgPersistNo; shown.dataset.persisted = "0"; return false; });
  }

  // Leaving (or clearing the site's data from) the page while sales wait would lose them: the browser asks first.
  window.addEventListener("beforeunload", function (event) {
    if (waitingNow > 0) {
      event.preventDefault();
      event.returnValue = msg.msgLeave;
      return msg.msgLeave;
    }
  });

  // The waiting sales as a file the manager imports once on the point's page (no network needed to make it).
  root.querySelector("[data-export]").addEventListener("click", function () {
    Promise.all([allSales(), getMeta("device:" + pointId)]).then(function (found) {
      var waiting = found[0].filter(function (s) { return s.state === "waiting"; });
      var file = {
        format: "shop-point-sales", version: 1, point_id: pointId, point_code: pointCode, device: found[1],
        user: state && state.user, exported_at: new Date().toISOString(),
        sales: waiting.map(function (s) {
          return { id: s.id, receipt: s.receipt, point_id: s.point_id, household_id: s.household_id,
                   enterprise_id: s.enterprise_id, product_id: s.product_id, quantity: s.quantity,
                   unit_price_fen: s.unit_price_fen, amount_fen: s.amount_fen, payment: s.payment, sold_at: s.sold_at };
        })
      };
      var blob = new Blob([JSON.stringify(file, null, 1)], { type: "application/json" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = pointCode + "-" + (found[1] || "00") + "-" + localDay() + "-" + waiting.length + ".json";
      document.body.appendChild(link);
      link.click();
      setTimeout(function () { URL.revokeObjectURL(link.href); link.remove(); }, 1000);
      root.querySelector("[data-export-done]").textContent = msg.msgExported.replace("{n}", String(waiting.length));
    });
  });
  window.addEventListener("online", function () { sync(); });
  window.addEventListener("offline", function () { setNet(false); });
  setInterval(function () { if (navigator.onLine) sync(); }, 20000);

  // --- start ---------------------------------------------------------------------------------------------------
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register(root.dataset.sw, { scope: "/op/" }).catch(function () {});
    if (window.caches && navigator.onLine) {  // this very page, for when it is opened again offline
      caches.open("shop-op-v2").then(function (cache) {
        return cache.add(location.href).then(function () { root.dataset.cached = "1"; });
      }).catch(function () {});
    }
  }
  askPersist();
  loadState().then(ensureDevice).then(render).then(fillForm).then(sync);
})();
