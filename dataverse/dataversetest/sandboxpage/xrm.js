// A minimal Xrm host for the Dataverse simulator: the parts of the model-driven apps' client API that the
// CSP Connector's web resources call, working against the simulator's Web API on the page's own origin.
//
//   Xrm.WebApi.retrieveRecord / retrieveMultipleRecords / updateRecord / createRecord (logical names, as in
//     Dynamics; the entity set is read from EntityDefinitions)
//   Xrm.Utility.getGlobalContext().getClientUrl(), .userSettings.userId / userName
//   Xrm.Utility.lookupObjects (a small picker of the rows of the entity type)
//
// The form's context (the PrimaryControl the commands get) is the page's own: the simulator's pages
// (pages/app.js) make it.
//
// Calls act as the user XrmHost.configure({ userId }) names (the MSCRMCallerID header), as a person signed
// in to Dynamics would. Errors are rejected like Xrm's: an object with errorCode and message.
(function (global) {
  "use strict";

  var state = { userId: "", userName: "", sets: {} };
  var clientUrl = global.location.origin;
  var api = clientUrl + "/api/data/v9.2/";

  function headers(extra) {
    var h = { "Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0", "Content-Type": "application/json" };
    if (state.userId) {
      h["MSCRMCallerID"] = state.userId;
    }
    for (var k in extra || {}) {
      h[k] = extra[k];
    }
    return h;
  }

  async function call(method, path, body, extra) {
    var response = await fetch(api + path, { method: method, headers: headers(extra), body: body === undefined ? undefined : JSON.stringify(body), cache: "no-store" });
    if (response.status === 204) {
      return { response: response, json: null };
    }
    var json = null;
    try {
      json = await response.json();
    } catch (e) {
      json = null;
    }
    if (!response.ok) {
      var err = (json && json.error) || {};
      throw { errorCode: err.code || response.status, message: err.message || ("The request failed with HTTP status " + response.status + ".") };
    }
    return { response: response, json: json };
  }

  async function entitySet(logicalName) {
    if (!state.sets[logicalName]) {
      var r = await call("GET", "EntityDefinitions(LogicalName='" + logicalName + "')?$select=EntitySetName");
      state.sets[logicalName] = r.json.EntitySetName;
    }
    return state.sets[logicalName];
  }

  function bare(id) {
    return String(id).replace(/[{}]/g, "").toLowerCase();
  }

  var WebApi = {
    retrieveRecord: async function (entity, id, options) {
      var set = await entitySet(entity);
      var r = await call("GET", set + "(" + bare(id) + ")" + (options || ""), undefined, { "Prefer": 'odata.include-annotations="*"' });
      return r.json;
    },
    retrieveMultipleRecords: async function (entity, options) {
      var set = await entitySet(entity);
      var r = await call("GET", set + (options || ""), undefined, { "Prefer": 'odata.include-annotations="*"' });
      return { entities: r.json.value || [], nextLink: r.json["@odata.nextLink"] };
    },
    updateRecord: async function (entity, id, data) {
      var set = await entitySet(entity);
      await call("PATCH", set + "(" + bare(id) + ")", data, { "If-Match": "*" });
      return { entityType: entity, id: bare(id) };
    },
    createRecord: async function (entity, data) {
      var set = await entitySet(entity);
      var r = await call("POST", set, data);
      var location = r.response.headers.get("OData-EntityId") || "";
      var m = /\(([0-9a-fA-F-]{36})\)$/.exec(location);
      return { entityType: entity, id: m ? m[1] : "" };
    }
  };

  // lookupObjects shows the rows of the first entity type with a button each; it resolves with the chosen
  // one ([{ id, name, entityType }]) or with [] when closed.
  async function lookupObjects(options) {
    var entity = (options.entityTypes && options.entityTypes[0]) || options.defaultEntityType;
    var set = await entitySet(entity);
    var meta = await call("GET", "EntityDefinitions(LogicalName='" + entity + "')?$select=PrimaryIdAttribute,PrimaryNameAttribute");
    var idCol = meta.json.PrimaryIdAttribute || entity + "id", nameCol = meta.json.PrimaryNameAttribute || "name";
    var rows = (await call("GET", set + "?$select=" + idCol + "," + nameCol + "&$top=50")).json.value || [];
    return new Promise(function (resolve) {
      var dialog = document.createElement("div");
      dialog.id = "xrm-lookup";
      dialog.setAttribute("role", "dialog");
      var title = document.createElement("p");
      title.textContent = "Choose a row of " + entity;
      dialog.appendChild(title);
      rows.forEach(function (row) {
        var b = document.createElement("button");
        b.type = "button";
        b.className = "xrm-lookup-row";
        b.dataset.id = row[idCol];
        b.textContent = row[nameCol];
        b.onclick = function () { dialog.remove(); resolve([{ id: "{" + String(row[idCol]).toUpperCase() + "}", name: row[nameCol], entityType: entity }]); };
        dialog.appendChild(b);
      });
      var cancel = document.createElement("button");
      cancel.type = "button";
      cancel.id = "xrm-lookup-cancel";
      cancel.textContent = "Cancel";
      cancel.onclick = function () { dialog.remove(); resolve([]); };
      dialog.appendChild(cancel);
      document.body.appendChild(dialog);
    });
  }

  var globalContext = {
    getClientUrl: function () { return clientUrl; },
    userSettings: {}
  };
  Object.defineProperty(globalContext.userSettings, "userId", { get: function () { return "{" + state.userId.toUpperCase() + "}"; } });
  Object.defineProperty(globalContext.userSettings, "userName", { get: function () { return state.userName; } });

  global.Xrm = {
    WebApi: WebApi,
    Utility: { getGlobalContext: function () { return globalContext; }, lookupObjects: lookupObjects }
  };

  // configure names the user the page acts as and reads the user's name.
  async function configure(options) {
    state.userId = bare(options.userId || "");
    if (state.userId) {
      try {
        state.userName = (await call("GET", "systemusers(" + state.userId + ")?$select=fullname")).json.fullname || "";
      } catch (e) {
        state.userName = "";
      }
    }
  }

  global.XrmHost = { configure: configure };
})(window);
