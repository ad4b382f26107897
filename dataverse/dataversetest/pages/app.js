// The Dataverse simulator's pages: the bell, saving a form through the Web API, refreshing it, and the
// command bar's buttons, which run the app's web resources with the form's context as Dynamics does.
(function (global) {
  "use strict";

  var page = global.simPage || {};
  var api = global.location.origin + "/api/data/v9.2/";

  function headers(extra) {
    var h = { "Accept": "application/json", "Content-Type": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0" };
    if (page.userId) {
      h["MSCRMCallerID"] = page.userId;
    }
    for (var k in extra || {}) {
      h[k] = extra[k];
    }
    return h;
  }

  // The bell: a button that shows and hides the notifications panel.
  var bell = document.getElementById("bell");
  var panel = document.getElementById("bell-panel");
  if (bell && panel) {
    bell.addEventListener("click", function () {
      var open = panel.hidden;
      panel.hidden = !open;
      bell.setAttribute("aria-expanded", String(open));
      if (open) {
        var first = panel.querySelector("a, button");
        if (first) { first.focus(); }
      }
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && !panel.hidden) {
        panel.hidden = true;
        bell.setAttribute("aria-expanded", "false");
        bell.focus();
      }
    });
  }

  // Form notifications (formContext.ui.setFormNotification).
  var notices = document.getElementById("notifications");
  function setNotification(text, level, id) {
    clearNotification(id);
    var p = document.createElement("p");
    p.className = "notification notification-" + String(level || "INFO").toLowerCase();
    p.dataset.id = id || "";
    p.dataset.level = level || "INFO";
    if (level === "ERROR") {
      p.setAttribute("role", "alert");
    }
    p.textContent = text;
    notices.appendChild(p);
    return true;
  }
  function clearNotification(id) {
    notices.querySelectorAll(".notification").forEach(function (p) {
      if (!id || p.dataset.id === id) { p.remove(); }
    });
    return true;
  }

  function record() { return document.getElementById("record"); }

  function inputs() {
    var r = record();
    return r ? Array.prototype.slice.call(r.querySelectorAll("[data-kind]")) : [];
  }

  function dirtyInputs() {
    return inputs().filter(function (el) { return el.value !== el.dataset.original; });
  }

  // changes is the PATCH body of the edited fields, in the Web API's shapes.
  function changes() {
    var body = {};
    dirtyInputs().forEach(function (el) {
      var col = el.dataset.column, v = el.value;
      switch (el.dataset.kind) {
        case "integer": body[col] = v === "" ? null : parseInt(v, 10); break;
        case "decimal": body[col] = v === "" ? null : parseFloat(v); break;
        case "boolean": body[col] = v === "true"; break;
        case "choice": body[col] = v === "" ? null : parseInt(v, 10); break;
        case "datetime": body[col] = v === "" ? null : v + ":00Z"; break;
        case "lookup":
          if (v !== "") { body[col + "@odata.bind"] = "/" + page.sets[el.dataset.target] + "(" + v + ")"; }
          break;
        default: body[col] = v === "" ? null : v;
      }
    });
    return body;
  }

  async function save() {
    var body = changes();
    if (Object.keys(body).length === 0) {
      return;
    }
    var response = await fetch(api + page.set + "(" + page.id + ")", { method: "PATCH", headers: headers({ "If-Match": "*" }), body: JSON.stringify(body), cache: "no-store" });
    if (!response.ok) {
      var message = "Dataverse refused the change (HTTP " + response.status + ").";
      try {
        var json = await response.json();
        if (json && json.error && json.error.message) { message = json.error.message; }
      } catch (e) { /* the status says it */ }
      setNotification("Not saved: " + message, "ERROR", "save");
      throw new Error(message);
    }
    clearNotification("save");
    await refresh();
  }

  // refresh reads the row again and renders the form anew.
  async function refresh() {
    var url = new URL(global.location.href);
    url.searchParams.set("part", "record");
    var response = await fetch(url.toString(), { headers: { "Accept": "text/html" }, cache: "no-store" });
    if (!response.ok) {
      setNotification("The row could not be read again: " + (await response.text()), "ERROR", "refresh");
      return;
    }
    var r = record();
    var active = document.activeElement && document.activeElement.id;
    r.innerHTML = await response.text();
    if (active && document.getElementById(active)) { document.getElementById(active).focus(); }
  }

  // formContext is the form's context, the PrimaryControl of the form's commands.
  var formContext = {
    data: {
      entity: {
        getId: function () { return "{" + String(page.id).toUpperCase() + "}"; },
        getEntityName: function () { return page.table; },
        getEntitySetName: function () { return page.set; },
        getIsDirty: function () { return dirtyInputs().length > 0; },
        getPrimaryAttributeValue: function () { var n = document.getElementById("record-name"); return n ? n.textContent : ""; },
        save: function () { return save(); }
      },
      refresh: async function (saveFirst) {
        if (saveFirst) { await save(); }
        await refresh();
      },
      save: function () { return save(); }
    },
    ui: {
      setFormNotification: setNotification,
      clearFormNotification: clearNotification
    },
    getAttribute: function (name) {
      var el = inputs().filter(function (x) { return x.dataset.column === name; })[0];
      return el ? { getValue: function () { return el.value; }, setValue: function (v) { el.value = v; } } : null;
    }
  };

  // gridContext is a list page's context, the PrimaryControl of its main grid commands.
  var gridContext = {
    getEntityName: function () { return page.table; },
    refresh: function () { global.location.reload(); },
    getGrid: function () { return { getSelectedRows: function () { return { getLength: function () { return 0; }, forEach: function () {} }; } }; }
  };

  var loaded = {};
  function loadScript(name) {
    if (!loaded[name]) {
      loaded[name] = new Promise(function (resolve, reject) {
        var s = document.createElement("script");
        s.src = "/WebResources/" + encodeURIComponent(name);
        s.onload = resolve;
        s.onerror = function () { reject(new Error("The web resource " + name + " could not be loaded.")); };
        document.head.appendChild(s);
      });
    }
    return loaded[name];
  }

  function resolve(path) {
    return path.split(".").reduce(function (o, k) { return o ? o[k] : undefined; }, global);
  }

  // arguments turns the app action's parameters (CrmParameters) into the function's arguments.
  function args(raw) {
    var list = [];
    try { list = raw ? JSON.parse(raw) : []; } catch (e) { list = []; }
    var primary = record() ? formContext : gridContext;
    return list.map(function (p) {
      if (p.type === 5 || p.value === "PrimaryControl" || p.Name === "PrimaryControl") { return primary; }
      return p.value;
    });
  }

  async function runCommand(button) {
    var fn = button.dataset["function"];
    try {
      await loadScript(button.dataset.webresource);
      var f = resolve(fn);
      if (typeof f !== "function") {
        throw new Error("The web resource " + button.dataset.webresource + " has no function " + fn + ".");
      }
      await f.apply(global, args(button.dataset.parameters));
    } catch (e) {
      setNotification(button.textContent.trim() + " could not run: " + (e && e.message ? e.message : String(e)), "ERROR", "command");
    }
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest("button");
    if (!b) { return; }
    if (b.id === "cmd-save") {
      save().then(function () { setNotification("Saved.", "INFO", "save"); }, function () {});
    } else if (b.id === "cmd-refresh") {
      refresh();
    } else if (b.id === "cmd-refresh-list") {
      global.location.reload();
    } else if (b.classList.contains("appaction") && !b.disabled) {
      runCommand(b);
    }
  });

  if (global.XrmHost && page.userId) {
    global.XrmHost.configure({ userId: page.userId });
  }
  global.SimPage = { formContext: formContext, gridContext: gridContext, refresh: refresh, save: save };
  // The command bar's buttons work from now on.
  document.querySelectorAll("button[data-wait]").forEach(function (b) {
    b.disabled = false;
    b.removeAttribute("data-wait");
  });
})(window);
