// CSP Connector: the command bar buttons of the CSP Connector app.
//
// Every button asks the connector for something by writing a column of the row (a request column set to
// the server's time, a status set back, an account chosen); the connector, woken by that change, does the
// work and writes the outcome back on the row. The button shows a notification on the form while it
// waits, refreshes the form when the connector has answered, and says what happened in plain words. It
// never waits forever: after a while it says the request stays on the row and will be carried out.
//
// Each command is a function of CSPConnector taking the form's context (the PrimaryControl parameter of
// the command). CSPConnector.values (the choice values of the schema) is written above this script by the
// installer.
var CSPConnector = CSPConnector || {};

(function (ns) {
  "use strict";

  var NOTICE = "csp_command";
  var values = ns.values || {};

  // How often, and for how long, a button waits for the connector's answer.
  ns.options = ns.options || { pollIntervalMs: 2000, pollLimitMs: 120000 };

  function rowOf(formContext) {
    var entity = formContext.data.entity;
    return { table: entity.getEntityName(), id: entity.getId().replace(/[{}]/g, "").toLowerCase() };
  }

  function notify(formContext, level, text) {
    formContext.ui.clearFormNotification(NOTICE);
    formContext.ui.setFormNotification(text, level, NOTICE);
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  // serverTime is Dataverse's clock, read from the Date header of a WhoAmI call (an HTTP date, to the
  // second), rounded up to the next second: the server's time is at or after the header's second, so a
  // request is never dated at or before the last time the work was done in that same second. The browser's
  // clock is never used: it may be wrong, and a request dated in the future once ran a job without end.
  async function serverTime() {
    var url = Xrm.Utility.getGlobalContext().getClientUrl() + "/api/data/v9.2/WhoAmI";
    var response;
    try {
      response = await fetch(url, {
        method: "GET", cache: "no-store", credentials: "same-origin",
        headers: { "Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0" }
      });
    } catch (e) {
      throw new Error("Dataverse could not be reached to read its clock. Check your connection, then try again.");
    }
    var date = response.headers.get("Date");
    var at = date ? Date.parse(date) : NaN;
    if (!response.ok || isNaN(at)) {
      throw new Error("Dataverse did not say what time it is, so the request could not be dated. Try again in a moment.");
    }
    return new Date(Math.floor(at / 1000) * 1000 + 1000);
  }

  function plain(error) {
    var message = (error && error.message) || String(error);
    return message.replace(/\s+$/, "");
  }

  // write changes the row; a refusal is said in words.
  async function write(row, changes, what) {
    try {
      await Xrm.WebApi.updateRecord(row.table, row.id, changes);
    } catch (e) {
      throw new Error("Dataverse refused to record the " + what + " request: " + plain(e) + " Check that you may change this row, then try again.");
    }
  }

  async function read(row, columns) {
    return Xrm.WebApi.retrieveRecord(row.table, row.id, "?$select=" + columns.join(","));
  }

  // waitFor polls the row until answered(row) gives the outcome message, or gives up after the bound.
  async function waitFor(row, columns, answered) {
    var started = Date.now();
    for (;;) {
      await sleep(ns.options.pollIntervalMs);
      var current;
      try {
        current = await read(row, columns);
      } catch (e) {
        current = null; // a failed read is tried again until the bound
      }
      if (current) {
        var outcome = answered(current);
        if (outcome !== undefined && outcome !== null) {
          return outcome;
        }
      }
      if (Date.now() - started >= ns.options.pollLimitMs) {
        return null;
      }
    }
  }

  // run carries out one command: ask (write the request), then wait for the answer and show it.
  async function run(formContext, what, ask, columns, answered) {
    var row = rowOf(formContext);
    try {
      var asked = await ask(row);
      if (asked === false) {
        return;
      }
      notify(formContext, "INFO", what + " requested. The connector is working on it; this form refreshes when it has answered.");
      var outcome = await waitFor(row, columns, answered);
      await formContext.data.refresh(false);
      if (outcome === null) {
        notify(formContext, "WARNING", "The connector has not answered the " + what + " request yet. It stays on the row and is carried out when the connector runs; refresh the form later to see the outcome.");
        return;
      }
      notify(formContext, outcome.level || "INFO", outcome.text);
    } catch (e) {
      notify(formContext, "ERROR", what + " could not be requested. " + plain(e));
    }
  }

  // request sets a request column to the server's time; the connector empties it when it has answered.
  function request(formContext, what, column, outcomeColumn) {
    var ask = async function (row) {
      var changes = {};
      changes[column] = (await serverTime()).toISOString();
      await write(row, changes, what);
    };
    return run(formContext, what, ask, [column, outcomeColumn], function (current) {
      if (current[column] !== null && current[column] !== undefined) {
        return null;
      }
      return { text: what + " done. " + (current[outcomeColumn] || "") };
    });
  }

  // Verify Connectivity (csp_provider): the connector checks its credentials and access to Partner Center.
  ns.verifyConnectivity = function (formContext) {
    return request(formContext, "Verify Connectivity", "csp_verifyrequestedon", "csp_connectivitymessage");
  };

  // Run Now (csp_job): the job runs now, once.
  ns.runNow = function (formContext) {
    return request(formContext, "Run Now", "csp_runrequestedon", "csp_message");
  };

  // Create Agreements (csp_agreementtemplate): a Pending agreement for every mapped provider account.
  ns.createAgreements = function (formContext) {
    return request(formContext, "Create Agreements", "csp_createrequestedon", "csp_createmessage");
  };

  // Diagnose (csp_licensechangelog, csp_subscription, csp_agreement): the connector writes every check it
  // makes, and what it would do next, into the Diagnosis field. Nothing else changes.
  ns.diagnose = function (formContext) {
    return run(formContext, "Diagnose", async function (row) {
      await write(row, { csp_diagnoserequestedon: (await serverTime()).toISOString() }, "Diagnose");
    }, ["csp_diagnoserequestedon", "csp_diagnosis"], function (current) {
      if (current.csp_diagnoserequestedon !== null && current.csp_diagnoserequestedon !== undefined) {
        return null;
      }
      return { text: "Diagnosis written: read it in the Diagnosis field (every check the connector makes, and the next step)." };
    });
  };

  var provisioningLabels = {};
  provisioningLabels[values.provisioningAwaiting] = "Awaiting Provisioning";
  provisioningLabels[values.provisioningInProgress] = "Provisioning";
  provisioningLabels[values.provisioningProvisioned] = "Provisioned";
  provisioningLabels[values.provisioningFailed] = "Failed Provisioning";
  provisioningLabels[values.provisioningNotApplicable] = "Not Applicable";

  // Retry (csp_licensechangelog): a Failed change goes back to Awaiting Provisioning, and the connector
  // provisions it again from its checks. Any other change is left as it is.
  ns.retry = function (formContext) {
    var before = null;
    return run(formContext, "Retry", async function (row) {
      before = await read(row, ["csp_provisioningstatus", "csp_provisioningmessage", "statecode"]);
      if (before.statecode !== 0 || before.csp_provisioningstatus !== values.provisioningFailed) {
        var status = before.statecode !== 0 ? "archived" : (provisioningLabels[before.csp_provisioningstatus] || "not failed");
        notify(formContext, "INFO", "Retry is for a change that failed; this one is " + status + ", so nothing was changed.");
        return false;
      }
      if (formContext.data.entity.getIsDirty()) {
        await formContext.data.save(); // the fix typed on the form goes with the retry
      }
      await write(row, { csp_provisioningstatus: values.provisioningAwaiting }, "Retry");
    }, ["csp_provisioningstatus", "csp_provisioningmessage", "csp_heldreason"], function (current) {
      var status = current.csp_provisioningstatus;
      if (status === values.provisioningInProgress) {
        return null;
      }
      if (status === values.provisioningAwaiting && (current.csp_heldreason === null || current.csp_provisioningmessage === before.csp_provisioningmessage)) {
        return null; // not looked at yet
      }
      var level = status === values.provisioningFailed ? "ERROR" : status === values.provisioningProvisioned ? "INFO" : "WARNING";
      return { level: level, text: (provisioningLabels[status] || "Answered") + ": " + (current.csp_provisioningmessage || "") };
    });
  };

  // Request acceptance link (csp_agreement): the connector asks Partner Center for the link the customer
  // accepts the Microsoft Customer Agreement with, using the signatory on the form.
  ns.requestLink = function (formContext) {
    return run(formContext, "Request acceptance link", async function (row) {
      var current = await read(row, ["statecode", "statuscode", "csp_attestationstatus"]);
      if (current.statecode !== 0) {
        notify(formContext, "INFO", "This agreement is inactive: no link can be requested for it.");
        return false;
      }
      if (current.statuscode === values.statusActive) {
        notify(formContext, "INFO", "The customer has already accepted this agreement: no link is needed.");
        return false;
      }
      if (formContext.data.entity.getIsDirty()) {
        await formContext.data.save(); // the signatory typed on the form goes with the request
      }
      await write(row, { csp_attestationstatus: values.attestationLinkRequested }, "Request acceptance link");
    }, ["csp_attestationstatus", "csp_attestationmessage"], function (current) {
      if (current.csp_attestationstatus === values.attestationLinkRequested) {
        return null;
      }
      var level = current.csp_attestationstatus === values.attestationFailed ? "ERROR" : "INFO";
      return { level: level, text: current.csp_attestationmessage || "The connector answered the request." };
    });
  };

  // Map to account (csp_provideraccount): a person picks the Dynamics account this customer is; the row
  // becomes Mapped (the connector's rules never change it again) and the connector gives it its agreements.
  ns.mapToAccount = async function (formContext) {
    var row = rowOf(formContext);
    try {
      var picked = await Xrm.Utility.lookupObjects({ defaultEntityType: "account", entityTypes: ["account"], allowMultiSelect: false });
      if (!picked || picked.length === 0) {
        return; // closed without choosing
      }
      var account = picked[0];
      var by = "by " + (Xrm.Utility.getGlobalContext().userSettings.userName || "a person") + " on the form";
      var at = await serverTime();
      await write(row, {
        "csp_account@odata.bind": "/accounts(" + account.id.replace(/[{}]/g, "").toLowerCase() + ")",
        csp_mappingstatus: values.mappingMapped,
        csp_mappingmessage: "Mapped " + by + " on " + formatTime(at) + "."
      }, "Map to account");
      await formContext.data.refresh(false);
      notify(formContext, "INFO", "Mapped to " + (account.name || "the chosen account") + ". The connector gives it the agreements of its provider's active templates.");
    } catch (e) {
      notify(formContext, "ERROR", "Map to account could not be recorded. " + plain(e));
    }
  };

  var months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // formatTime writes a time as the connector's messages do: 2 Jan 2006 15:04 UTC.
  function formatTime(t) {
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    return t.getUTCDate() + " " + months[t.getUTCMonth()] + " " + t.getUTCFullYear() + " " + pad(t.getUTCHours()) + ":" + pad(t.getUTCMinutes()) + " UTC";
  }

})(CSPConnector);
