package api

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/apiauth"
	"github.com/cspconnector/csp-connector/connector/connectivity"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/connector/provideraccounts"
	"github.com/cspconnector/csp-connector/connector/provisioning"
	"github.com/cspconnector/csp-connector/connector/work"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// apiRoute is one operation: how it is served and how the OpenAPI document describes it.
type apiRoute struct {
	Method, Path             string // Path in net/http pattern syntax, which OpenAPI 2.0 paths share
	ID, Summary, Description string
	Role                     apiauth.Role
	Visibility               string // x-ms-visibility: "", important, advanced, internal
	Params                   []apiParam
	Body                     any // a value of the body's type (nil: no body)
	BodyDescription          string
	Responses                []apiResponse
	Pageable                 bool
	// Trigger marks the webhook subscription (x-ms-trigger); Notification is a value of the type posted to
	// the callback (x-ms-notification-content).
	Trigger                 bool
	TriggerHint             string
	Notification            any
	NotificationDescription string
	handle                  func(*apiCall) (apiResult, error)
}

type apiParam struct {
	Name, In, Type, Format string
	Summary, Description   string
	Required               bool
	Enum                   []string
	Default                any
	Visibility             string
	Dynamic                map[string]any // x-ms-dynamic-values
}

type apiResponse struct {
	Status      int
	Description string
	Body        any
	Headers     []string
}

func pathParam(name, summary, desc string) apiParam {
	return apiParam{Name: name, In: "path", Summary: summary, Description: desc, Required: true}
}

var pagingParams = []apiParam{
	{Name: "top", In: "query", Type: "integer", Format: "int32", Summary: "Page Size", Description: "How many items a page holds, from 1 to 1000 (default 100).", Visibility: "advanced"},
	{Name: "cursor", In: "query", Summary: "Cursor", Description: "Where the page starts: take it from the nextLink of the page before.", Visibility: "internal"},
}

// apiRoutes is the API: every operation, its role and its documentation.
func apiRoutes() []apiRoute {
	read, operate := apiauth.RoleReader, apiauth.RoleOperator
	paID := pathParam("providerAccountId", "Provider Account ID", "The provider account's row id in Dataverse.")
	agID := pathParam("agreementId", "Agreement ID", "The agreement's row id in Dataverse.")
	tplID := pathParam("templateId", "Agreement Template ID", "The agreement template's row id in Dataverse.")
	tplID.Dynamic = map[string]any{"operationId": "ListAgreementTemplates", "value-collection": "value", "value-path": "id", "value-title": "name"}
	lclID := pathParam("licenseChangeLogId", "License Change Log ID", "The license change log's row id in Dataverse.")
	subID := pathParam("subscriptionId", "Subscription ID", "The subscription's row id in Dataverse.")
	jobName := pathParam("jobName", "Job", "The job's name, as its row in Connector Jobs shows it.")
	jobName.Enum = jobNames()
	runID := pathParam("runId", "Run ID", "The run's row id in Connector Job Runs.")
	hookID := pathParam("subscriptionId", "Webhook Subscription ID", "The webhook subscription's id, from the Location of its creation.")
	ok := func(desc string, body any) apiResponse {
		return apiResponse{Status: 200, Description: desc, Body: body}
	}
	accepted := func(desc string, body any) apiResponse {
		return apiResponse{Status: 202, Description: desc, Body: body, Headers: []string{"Location", "Retry-After"}}
	}
	return []apiRoute{
		{Method: "GET", Path: Prefix + "/provider-accounts", ID: "ListProviderAccounts", Role: read, Pageable: true,
			Summary:     "List provider accounts",
			Description: "Lists the provider accounts (customer tenants) the connector keeps, filtered by mapping status, provider or tenant.",
			Params: append([]apiParam{
				{Name: "mappingStatus", In: "query", Summary: "Mapping Status", Description: "Only rows with this mapping status.", Enum: mappingStatusNames()},
				{Name: "providerId", In: "query", Format: "uuid", Summary: "Provider ID", Description: "Only rows of this provider (its row id).", Visibility: "advanced"},
				{Name: "tenantId", In: "query", Summary: "Tenant ID", Description: "Only the rows of this customer tenant id.", Visibility: "advanced"},
				{Name: "state", In: "query", Summary: "State", Description: "Active rows (the default), inactive ones (customers who left) or all.", Enum: []string{"active", "inactive", "all"}, Default: "active", Visibility: "advanced"},
			}, pagingParams...),
			Responses: []apiResponse{ok("A page of provider accounts.", ProviderAccountList{})},
			handle:    listProviderAccounts},
		{Method: "GET", Path: Prefix + "/provider-accounts/{providerAccountId}", ID: "GetProviderAccount", Role: read,
			Summary: "Get a provider account", Description: "Reads one provider account with its mapping status and message.",
			Params: []apiParam{paID}, Responses: []apiResponse{ok("The provider account.", ProviderAccountView{})}, handle: getByID("providerAccountId", "provider account", (*apiCall).providerAccount, providerAccountView)},
		{Method: "POST", Path: Prefix + "/provider-accounts/{providerAccountId}/map", ID: "MapProviderAccount", Role: operate,
			Summary:     "Map a provider account to an account",
			Description: "Maps a provider account to a Dynamics 365 account, as a person would in the form: it becomes Mapped and gets its Pending agreements.",
			Params:      []apiParam{paID}, Body: MapRequest{}, BodyDescription: "The account to map to.",
			Responses: []apiResponse{ok("The provider account after the mapping.", ProviderAccountView{})}, handle: mapProviderAccount},
		{Method: "POST", Path: Prefix + "/provider-accounts/sync", ID: "SyncProviderAccounts", Role: operate,
			Summary:     "Sync provider accounts now",
			Description: "Starts the Provider Account Sync: Partner Center's customers become provider accounts, mapped where that is safe. Poll the run until it finishes.",
			Responses:   []apiResponse{accepted("The sync started (or was already running): poll Location.", JobRunView{})}, handle: startJob(provideraccounts.SyncJobName)},
		syncSubscriptionsRoute(),

		{Method: "GET", Path: Prefix + "/agreements/{agreementId}", ID: "GetAgreement", Role: read,
			Summary: "Get an agreement", Description: "Reads one agreement: its attestation status, acceptance link, how and when the customer accepted.",
			Params: []apiParam{agID}, Responses: []apiResponse{ok("The agreement.", AgreementView{})}, handle: getByID("agreementId", "agreement", (*apiCall).agreement, agreementView)},
		{Method: "POST", Path: Prefix + "/agreements/{agreementId}/request-link", ID: "RequestAcceptanceLink", Role: operate,
			Summary:     "Request an acceptance link",
			Description: "Sends the customer's signatory Microsoft's link to accept the Microsoft Customer Agreement. Fields given here are saved on the agreement first; an open link is never replaced. A partner attestation goes through the same link (Microsoft retired the legacy partner attestation, signatory and date recorded without the link, on 5 January 2026): the agreement keeps Partner attestation as its path, and a Date agreed entered for the retired form is cleared.",
			Params:      []apiParam{agID}, Body: LinkRequest{}, BodyDescription: "The signatory; fields left out keep what the agreement has.",
			Responses: []apiResponse{ok("The agreement after the request: Link sent, with the link.", AgreementView{})}, handle: requestAcceptanceLink},
		{Method: "POST", Path: Prefix + "/agreements/check", ID: "RunAttestationCheck", Role: operate,
			Summary:     "Check waiting agreements now",
			Description: "Starts the Attestation Check: every agreement waiting on its customer is checked against Partner Center. Poll the run until it finishes.",
			Responses:   []apiResponse{accepted("The check started (or was already running): poll Location.", JobRunView{})}, handle: startJob(agreements.AttestationCheckJob)},
		{Method: "GET", Path: Prefix + "/agreement-templates", ID: "ListAgreementTemplates", Role: read, Visibility: "internal",
			Summary: "List agreement templates", Description: "Lists the active agreement templates, for choosing one in a flow.",
			Responses: []apiResponse{ok("The templates.", AgreementTemplateList{})}, handle: listAgreementTemplates},
		{Method: "POST", Path: Prefix + "/agreement-templates/{templateId}/create-agreements", ID: "CreateAgreementsForTemplate", Role: operate,
			Summary:     "Create agreements for a template",
			Description: "Creates a Pending agreement of the template for every mapped provider account of its provider that has none, as the template's Create Agreements button does. Poll Location until it finishes.",
			Params:      []apiParam{tplID},
			Responses:   []apiResponse{accepted("The creation started: poll Location.", TemplateCreation{})}, handle: createAgreementsForTemplate},
		{Method: "GET", Path: Prefix + "/agreement-templates/{templateId}/creation", ID: "GetAgreementCreation", Role: read,
			Summary:     "Get the agreement creation of a template",
			Description: "Says whether the last Create Agreements request of the template is done, and what it did.",
			Params:      []apiParam{tplID},
			Responses: []apiResponse{ok("The creation is done.", TemplateCreation{}),
				accepted("The creation is still running: ask again after Retry-After.", TemplateCreation{})}, handle: getAgreementCreation},

		{Method: "GET", Path: Prefix + "/license-change-logs/{licenseChangeLogId}", ID: "GetLicenseChangeLog", Role: read,
			Summary: "Get a license change log", Description: "Reads one license change log with its provisioning status and message.",
			Params: []apiParam{lclID}, Responses: []apiResponse{ok("The license change log.", provisioning.LCLState{})}, handle: getByID("licenseChangeLogId", "license change log", (*apiCall).lcl, provisioning.StateOf)},
		{Method: "POST", Path: Prefix + "/license-change-logs/{licenseChangeLogId}/provision", ID: "ProvisionLicenseChangeLog", Role: operate,
			Summary:     "Provision a license change now",
			Description: "Pushes one license change to Partner Center now, after every check the connector makes; with retry, a failed change is set back to Awaiting Provisioning first.",
			Params:      []apiParam{lclID}, Body: ProvisionRequest{}, BodyDescription: "Whether to retry a failed change.",
			Responses: []apiResponse{ok("The license change log after the run.", provisioning.LCLState{})}, handle: provisionLCL},
		{Method: "GET", Path: Prefix + "/license-change-logs/{licenseChangeLogId}/diagnosis", ID: "DiagnoseLicenseChangeLog", Role: read,
			Summary:     "Diagnose a license change",
			Description: "Explains what the connector would do with a license change and why, check by check, with Partner Center's view (changes nothing).",
			Params:      []apiParam{lclID}, Responses: []apiResponse{ok("The diagnosis.", provisioning.Diagnosis{})}, handle: getByID("licenseChangeLogId", "license change log", func(c *apiCall, id dataverse.GUID) (provisioning.Diagnosis, error) {
				return c.svc().Prov.Diagnose(c.ctx(), id)
			}, same[provisioning.Diagnosis])},
		{Method: "GET", Path: Prefix + "/subscriptions/{subscriptionId}/diagnosis", ID: "DiagnoseSubscription", Role: read,
			Summary:     "Diagnose a subscription",
			Description: "Lists a subscription's license changes oldest first, with their state and what holds or fails each (changes nothing).",
			Params:      []apiParam{subID}, Responses: []apiResponse{ok("The diagnosis.", provisioning.SubscriptionDiagnosis{})}, handle: getByID("subscriptionId", "subscription", func(c *apiCall, id dataverse.GUID) (provisioning.SubscriptionDiagnosis, error) {
				return c.svc().Prov.DiagnoseSubscription(c.ctx(), id)
			}, same[provisioning.SubscriptionDiagnosis])},

		{Method: "GET", Path: Prefix + "/jobs", ID: "ListJobs", Role: read,
			Summary: "List jobs", Description: "Lists the connector's scheduled jobs with their schedule and last run.",
			Responses: []apiResponse{ok("The jobs.", JobList{})}, handle: listJobs},
		{Method: "POST", Path: Prefix + "/jobs/{jobName}/run", ID: "RunJob", Role: operate,
			Summary: "Run a job now", Description: "Starts a job now, as its Run Now button does. Poll the run until it finishes.",
			Params: []apiParam{jobName}, Responses: []apiResponse{accepted("The run started (or was already running): poll Location.", JobRunView{})}, handle: runJob},
		{Method: "GET", Path: Prefix + "/jobs/{jobName}/runs", ID: "ListJobRuns", Role: read, Pageable: true,
			Summary: "List job runs", Description: "Lists a job's runs, newest first: when, what triggered it, what it did.",
			Params: append([]apiParam{jobName}, pagingParams...), Responses: []apiResponse{ok("A page of runs.", JobRunList{})}, handle: listJobRuns},
		{Method: "GET", Path: Prefix + "/jobs/{jobName}/runs/{runId}", ID: "GetJobRun", Role: read,
			Summary: "Get a job run", Description: "Reads one run of a job; while it runs the answer is 202 with Retry-After.",
			Params: []apiParam{jobName, runID}, Responses: []apiResponse{ok("The run has finished.", JobRunView{}),
				accepted("The run is still going: ask again after Retry-After.", JobRunView{})}, handle: getJobRun},

		{Method: "POST", Path: Prefix + "/connectivity/verify", ID: "VerifyConnectivity", Role: operate,
			Summary: "Verify connectivity", Description: "Checks now that the connector reaches Dataverse, Partner Center and Service Bus with its credentials.",
			Responses: []apiResponse{ok("What each check found.", connectivity.Report{})}, handle: verifyConnectivity},

		{Method: "POST", Path: Prefix + "/webhook-subscriptions", ID: "OnConnectorEvent", Role: operate, Trigger: true,
			Summary:     "When something needs a person",
			Description: "Starts the flow when the connector raises the chosen event: a provider account needs mapping, a license change failed, an agreement was accepted, or a job failed.",
			TriggerHint: "To see it work, run the Provider Account Sync on a provider with a customer no account matches.",
			Body:        WebhookSubscriptionRequest{}, BodyDescription: "The event to subscribe to; the callback is filled in by Power Automate.",
			Responses:    []apiResponse{{Status: 201, Description: "Subscribed: Location is where to delete the subscription.", Body: WebhookSubscriptionView{}, Headers: []string{"Location"}}},
			Notification: ConnectorEvent{}, NotificationDescription: "The event the connector posts.", handle: subscribeWebhook},
		{Method: "GET", Path: Prefix + "/webhook-subscriptions", ID: "ListWebhookSubscriptions", Role: read, Visibility: "internal",
			Summary: "List webhook subscriptions", Description: "Lists the webhook subscriptions, for finding stale ones (callback URLs are secrets and are not shown).",
			Params: pagingParams, Responses: []apiResponse{ok("The subscriptions.", WebhookSubscriptionList{})}, handle: listWebhooks},
		{Method: "DELETE", Path: Prefix + "/webhook-subscriptions/{subscriptionId}", ID: "DeleteWebhookSubscription", Role: operate, Visibility: "internal",
			Summary: "Delete a webhook subscription", Description: "Removes a webhook subscription; Power Automate calls it when the flow's trigger is removed.",
			Params: []apiParam{hookID}, Responses: []apiResponse{{Status: 204, Description: "Deleted (or already gone)."}}, handle: deleteWebhook},
	}
}

// jobNames are the jobs a service runs (the names are constants; the list is the service's).
func jobNames() []string {
	return []string{connectivity.VerifyJobName, provisioning.SweepJobName, provisioning.ReportJobName, provideraccounts.SyncJobName, agreements.AttestationCheckJob}
}

// Mapping statuses as the API names them.
var mappingStatuses = []struct {
	name   string
	status schema.MappingStatus
}{{"unmapped", schema.MappingUnmapped}, {"auto-mapped", schema.MappingAutoMapped}, {"mapped", schema.MappingMapped}, {"ambiguous", schema.MappingAmbiguous}}

func mappingStatusNames() []string {
	out := make([]string, len(mappingStatuses))
	for i, m := range mappingStatuses {
		out[i] = m.name
	}
	return out
}

func mappingStatusName(s schema.MappingStatus) string {
	for _, m := range mappingStatuses {
		if m.status == s {
			return m.name
		}
	}
	return ""
}

// svc is what the operations use of the connector.
func (c *apiCall) svc() *Deps { return &c.api.deps }

func (c *apiCall) ctx() context.Context { return c.r.Context() }

func listProviderAccounts(c *apiCall) (apiResult, error) {
	q := c.r.URL.Query()
	top, cursor, err := c.pageQuery()
	if err != nil {
		return apiResult{}, err
	}
	var filters []dataverse.Filter
	var fields []FieldError
	if v := q.Get("mappingStatus"); v != "" {
		found := false
		for _, m := range mappingStatuses {
			if m.name == v {
				filters, found = append(filters, dataverse.Eq("csp_mappingstatus", m.status)), true
			}
		}
		if !found {
			fields = append(fields, FieldError{Field: "mappingStatus", Message: "must be one of " + strings.Join(mappingStatusNames(), ", ")})
		}
	}
	if v := q.Get("providerId"); v != "" {
		if id, err := dataverse.ParseGUID(v); err != nil {
			fields = append(fields, FieldError{Field: "providerId", Message: "must be a GUID"})
		} else {
			filters = append(filters, dataverse.LookupEq("csp_provider", id))
		}
	}
	if v := q.Get("tenantId"); v != "" {
		filters = append(filters, dataverse.Eq("csp_tenantid", v))
	}
	switch q.Get("state") {
	case "", "active":
		filters = append(filters, dataverse.Eq("statecode", schema.StateActive))
	case "inactive":
		filters = append(filters, dataverse.Eq("statecode", schema.StateInactive))
	case "all":
	default:
		fields = append(fields, FieldError{Field: "state", Message: "must be active, inactive or all"})
	}
	if cursor != "" {
		id, err := dataverse.ParseGUID(cursor)
		if err != nil {
			fields = append(fields, FieldError{Field: "cursor", Message: "is not a cursor this API gave out: take it from a nextLink"})
		} else {
			filters = append(filters, dataverse.Gt("csp_provideraccountid", id))
		}
	}
	if len(fields) > 0 {
		return apiResult{}, badRequest("Some query parameters are not valid.", fields...)
	}
	query := &dataverse.Query{Select: dataverse.Columns[schema.ProviderAccount](), Filter: dataverse.And(filters...), OrderBy: []string{"csp_provideraccountid asc"}, Top: top + 1}
	out := ProviderAccountList{Value: []ProviderAccountView{}}
	for raw, err := range c.svc().DV.List(c.ctx(), schema.SetProviderAccounts, query) {
		if err != nil {
			return apiResult{}, err
		}
		var pa schema.ProviderAccount
		if err := dataverse.Unmarshal(raw, &pa); err != nil {
			return apiResult{}, err
		}
		if len(out.Value) == top {
			out.NextLink = c.nextLink(out.Value[top-1].ID, top)
			break
		}
		out.Value = append(out.Value, providerAccountView(pa))
	}
	return apiResult{body: out}, nil
}

func (c *apiCall) providerAccount(id dataverse.GUID) (schema.ProviderAccount, error) {
	return readRow[schema.ProviderAccount](c, schema.SetProviderAccounts, "provider account", id)
}

func mapProviderAccount(c *apiCall) (apiResult, error) {
	id, err := c.id("providerAccountId")
	if err != nil {
		return apiResult{}, err
	}
	var req MapRequest
	if err := c.decode(&req); err != nil {
		return apiResult{}, err
	}
	account, err := dataverse.ParseGUID(req.AccountID)
	if err != nil {
		return apiResult{}, badRequest("The account id is not valid.", FieldError{Field: "accountId", Message: "must be the GUID of an account row"})
	}
	pa, err := c.svc().Accounts.MapByHand(c.ctx(), id, account, "through the API by "+c.who.Name)
	switch {
	case errors.Is(err, provideraccounts.ErrInactive):
		return apiResult{}, conflict("Provider account %s is inactive (its customer left the provider): it cannot be mapped.", id)
	case errors.Is(err, provideraccounts.ErrNoAccount):
		return apiResult{}, badRequest("There is no such account.", FieldError{Field: "accountId", Message: fmt.Sprintf("no account %s in Dataverse", account)})
	case dataverse.IsNotFound(err):
		return apiResult{}, notFound("There is no provider account %s.", id)
	case err != nil:
		return apiResult{}, err
	}
	return apiResult{body: providerAccountView(pa)}, nil
}

// startJob starts a job in the background and answers 202 with the run to poll. A job already running
// answers with its running run, so a retried request does not start a second.
func startJob(name string) func(*apiCall) (apiResult, error) {
	return func(c *apiCall) (apiResult, error) {
		s := c.svc()
		// A run that has just finished still holds its lease and its place here for a moment after its
		// row says so: try again briefly before answering that it is busy.
		for attempt := 0; ; attempt++ {
			runID, _, err := s.Jobs.Start(c.ctx(), name, schema.TriggerAPI) // the run is the runner's: it outlives the request
			if err == nil {
				run, err := readRun(c.ctx(), s, name, runID)
				if err != nil {
					return apiResult{}, err
				}
				return apiResult{status: http.StatusAccepted, body: run, location: jobRunPath(name, runID), retryAfter: apiRetryAfter}, nil
			}
			if !jobs.ErrJobRunning(err) {
				return apiResult{}, err
			}
			run, ok, ferr := runningRun(c.ctx(), s, name)
			if ferr != nil {
				return apiResult{}, ferr
			}
			if ok {
				return apiResult{status: http.StatusAccepted, body: run, location: Prefix + "/jobs/" + url.PathEscape(name) + "/runs/" + run.ID, retryAfter: apiRetryAfter}, nil
			}
			if attempt == 20 {
				return apiResult{}, &apiError{status: http.StatusConflict, retryAfter: apiRetryAfter,
					detail: fmt.Sprintf("%s is finishing a run. Try again in a few seconds.", name)}
			}
			select {
			case <-c.ctx().Done():
				return apiResult{}, c.ctx().Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func jobRunPath(name string, id dataverse.GUID) string {
	return Prefix + "/jobs/" + url.PathEscape(name) + "/runs/" + id.String()
}

func runJob(c *apiCall) (apiResult, error) {
	name := c.r.PathValue("jobName")
	if err := c.knownJob(name); err != nil {
		return apiResult{}, err
	}
	return startJob(name)(c)
}

func (c *apiCall) agreement(id dataverse.GUID) (schema.Agreement, error) {
	return readRow[schema.Agreement](c, schema.SetAgreements, "agreement", id)
}

// signatoryFields are the request's names of the signatory's fields.
var signatoryFields = map[string]string{
	"FirstName": "signatoryFirstName", "LastName": "signatoryLastName", "Email": "signatoryEmail", "Phone": "signatoryPhone",
	"Company": "signatoryCompany", "Country": "signatoryCountry", "Language": "signatoryLanguage",
}

func requestAcceptanceLink(c *apiCall) (apiResult, error) {
	id, err := c.id("agreementId")
	if err != nil {
		return apiResult{}, err
	}
	var req LinkRequest
	if len(strings.TrimSpace(string(c.body))) > 0 {
		if err := c.decode(&req); err != nil {
			return apiResult{}, err
		}
	}
	a, err := c.svc().Agreements.RequestLink(c.ctx(), id, req.signatory())
	var problems agreements.LinkProblems
	var runErr *agreements.LinkRunError
	switch {
	case dataverse.IsNotFound(err):
		return apiResult{}, notFound("There is no agreement %s.", id)
	case errors.Is(err, agreements.ErrAgreementInactive):
		return apiResult{}, conflict("The agreement is inactive: no link is sent for it.")
	case errors.Is(err, agreements.ErrAlreadyAccepted):
		return apiResult{}, conflict("The agreement is already accepted (%s): no link is needed.", schema.OptionLabel(schema.TableAgreement, "csp_attestationstatus", int(a.AttestationStatus)))
	case errors.As(err, &problems):
		fields := make([]FieldError, len(problems))
		for i, p := range problems {
			fields[i] = FieldError{Field: cmp.Or(signatoryFields[p.Field], "agreement"), Message: p.Message}
		}
		first := fields[0].Message
		if problems[0].TooLong {
			first = fields[0].Field + " " + first
		}
		return apiResult{}, badRequest("The link cannot be requested: "+first, fields...)
	case errors.As(err, &runErr):
		// The row says Link requested: the work queue tries it again (the gate drops the event of the
		// connector's own write, and the check job does not look at requested rows).
		s := c.svc()
		// Detached: the retry is queued even when the request is gone; the queue's shutdown ends the wait.
		if qerr := s.Queue.Submit(context.WithoutCancel(c.ctx()), work.Item{Key: work.Key{Table: schema.TableAgreement, ID: id}, Source: work.SourceAPI}); qerr != nil {
			c.api.opts.Logger.Warn("could not queue the link request for a retry", "agreement", id, "error", qerr)
		}
		return apiResult{}, err
	case err != nil:
		return apiResult{}, err
	}
	switch a.AttestationStatus {
	case schema.AttestationFailed:
		return apiResult{}, &apiError{status: http.StatusConflict, detail: a.AttestationMessage}
	case schema.AttestationLinkRequested:
		// Held (Partner Center refused the connector's sign-in): no link was sent.
		return apiResult{}, &apiError{status: http.StatusServiceUnavailable, retryAfter: 60, detail: "No link was sent: " + a.AttestationMessage}
	}
	return apiResult{body: agreementView(a)}, nil
}

func listAgreementTemplates(c *apiCall) (apiResult, error) {
	out := AgreementTemplateList{Value: []AgreementTemplateView{}}
	q := &dataverse.Query{Select: dataverse.Columns[schema.AgreementTemplate](), Filter: dataverse.Eq("statecode", schema.StateActive), OrderBy: []string{"csp_name asc"}, Top: apiMaxPage}
	for raw, err := range c.svc().DV.List(c.ctx(), schema.SetAgreementTemplates, q) {
		if err != nil {
			return apiResult{}, err
		}
		var t schema.AgreementTemplate
		if err := dataverse.Unmarshal(raw, &t); err != nil {
			return apiResult{}, err
		}
		out.Value = append(out.Value, AgreementTemplateView{ID: t.ID.String(), Name: t.Name, ProviderID: refString(t.Provider),
			AgreementType: schema.OptionLabel(schema.TableAgreementTemplate, "csp_agreementtype", int(t.AgreementType))})
	}
	return apiResult{body: out}, nil
}

func (c *apiCall) template(id dataverse.GUID) (schema.AgreementTemplate, error) {
	return readRow[schema.AgreementTemplate](c, schema.SetAgreementTemplates, "agreement template", id)
}

// createAgreementsForTemplate records the request on the template, as its button does, and queues it
// here (the connector's own write raises no event it acts on; a replica that stops before running it leaves
// the request on the row, for the template's next wake-up). The template's columns are the status.
func createAgreementsForTemplate(c *apiCall) (apiResult, error) {
	id, err := c.id("templateId")
	if err != nil {
		return apiResult{}, err
	}
	t, err := c.svc().Agreements.RequestCreate(c.ctx(), id)
	switch {
	case dataverse.IsNotFound(err):
		return apiResult{}, notFound("There is no agreement template %s.", id)
	case errors.Is(err, agreements.ErrTemplateInactive):
		return apiResult{}, conflict("This template is inactive: activate it before creating agreements.")
	case errors.Is(err, agreements.ErrTemplateNoProvider):
		return apiResult{}, conflict("This template has no provider: set its Provider first.")
	case err != nil:
		return apiResult{}, err
	}
	s := c.svc()
	// Detached: the row asks for the creation, so it is queued even when the request is gone.
	if err := s.Queue.Submit(context.WithoutCancel(c.ctx()), work.Item{Key: work.Key{Table: schema.TableAgreementTemplate, ID: id}, Source: work.SourceAPI}); err != nil {
		return apiResult{}, err
	}
	return apiResult{status: http.StatusAccepted, body: templateCreation(t), location: Prefix + "/agreement-templates/" + id.String() + "/creation", retryAfter: apiRetryAfter}, nil
}

func getAgreementCreation(c *apiCall) (apiResult, error) {
	id, err := c.id("templateId")
	if err != nil {
		return apiResult{}, err
	}
	t, err := c.template(id)
	if err != nil {
		return apiResult{}, err
	}
	if t.CreateRequestedOn.IsZero() && t.CreateDoneOn.IsZero() {
		return apiResult{}, notFound("Create Agreements was never requested on this template.")
	}
	if agreements.CreationPending(t) {
		return apiResult{status: http.StatusAccepted, body: templateCreation(t), location: c.r.URL.EscapedPath(), retryAfter: apiRetryAfter}, nil
	}
	return apiResult{body: templateCreation(t)}, nil
}

func (c *apiCall) lcl(id dataverse.GUID) (schema.LicenseChangeLog, error) {
	return readRow[schema.LicenseChangeLog](c, schema.SetLicenseChangeLogs, "license change log", id)
}

// provisionLCL runs one change through the service's work queue (so it never overlaps the same row's
// event), after setting a failed one back to Awaiting Provisioning when asked to retry.
func provisionLCL(c *apiCall) (apiResult, error) {
	id, err := c.id("licenseChangeLogId")
	if err != nil {
		return apiResult{}, err
	}
	var req ProvisionRequest
	if len(strings.TrimSpace(string(c.body))) > 0 {
		if err := c.decode(&req); err != nil {
			return apiResult{}, err
		}
	}
	l, err := c.lcl(id)
	if err != nil {
		return apiResult{}, err
	}
	if l.State != schema.StateActive {
		return apiResult{}, conflict("The license change log is archived (inactive): it is not provisioned.")
	}
	if req.Retry {
		if err := c.svc().Prov.Retry(c.ctx(), l); err != nil {
			return apiResult{}, err
		}
	}
	if err := c.svc().Queue.Do(c.ctx(), work.Item{Key: work.Key{Table: schema.TableLicenseChangeLog, ID: id}, Source: work.SourceAPI}); err != nil {
		return apiResult{}, err
	}
	l, err = c.lcl(id)
	if err != nil {
		return apiResult{}, err
	}
	return apiResult{body: provisioning.StateOf(l)}, nil
}

func listJobs(c *apiCall) (apiResult, error) {
	s := c.svc()
	out := JobList{Value: []JobView{}}
	for _, name := range s.Jobs.Names() {
		row, err := s.Jobs.Read(c.ctx(), name)
		if dataverse.IsNotFound(err) {
			continue // created at the next start
		}
		if err != nil {
			return apiResult{}, err
		}
		out.Value = append(out.Value, jobView(row, c.api.opts.Now()))
	}
	return apiResult{body: out}, nil
}

func (c *apiCall) job(name string) (schema.Job, error) {
	if err := c.knownJob(name); err != nil {
		return schema.Job{}, err
	}
	row, err := c.svc().Jobs.Read(c.ctx(), name)
	if dataverse.IsNotFound(err) {
		return row, notFound("The job %q has no row yet: it is created when the connector starts.", name)
	}
	return row, err
}

// listJobRuns pages a job's runs newest first; the cursor is the last run's start time and id.
func listJobRuns(c *apiCall) (apiResult, error) {
	name := c.r.PathValue("jobName")
	job, err := c.job(name)
	if err != nil {
		return apiResult{}, err
	}
	top, cursor, err := c.pageQuery()
	if err != nil {
		return apiResult{}, err
	}
	filter := dataverse.LookupEq("csp_job", job.ID)
	if cursor != "" {
		at, idText, _ := strings.Cut(cursor, "_")
		t, terr := time.Parse(time.RFC3339, at)
		id, ierr := dataverse.ParseGUID(idText)
		if terr != nil || ierr != nil {
			return apiResult{}, badRequest("The cursor is not valid.", FieldError{Field: "cursor", Message: "is not a cursor this API gave out: take it from a nextLink"})
		}
		filter = dataverse.And(filter, dataverse.Or(dataverse.Lt("csp_startedon", t), dataverse.And(dataverse.Eq("csp_startedon", t), dataverse.Lt("csp_jobrunid", id))))
	}
	q := &dataverse.Query{Select: dataverse.Columns[schema.JobRun](), Filter: filter, OrderBy: []string{"csp_startedon desc", "csp_jobrunid desc"}, Top: top + 1}
	out := JobRunList{Value: []JobRunView{}}
	for raw, err := range c.svc().DV.List(c.ctx(), schema.SetJobRuns, q) {
		if err != nil {
			return apiResult{}, err
		}
		var run schema.JobRun
		if err := dataverse.Unmarshal(raw, &run); err != nil {
			return apiResult{}, err
		}
		if len(out.Value) == top {
			last := out.Value[top-1]
			out.NextLink = c.nextLink(last.StartedOn.UTC().Format(time.RFC3339)+"_"+last.ID, top)
			break
		}
		out.Value = append(out.Value, jobRunView(name, run, job, c.api.opts.Now()))
	}
	return apiResult{body: out}, nil
}

func getJobRun(c *apiCall) (apiResult, error) {
	name := c.r.PathValue("jobName")
	job, err := c.job(name)
	if err != nil {
		return apiResult{}, err
	}
	id, err := c.id("runId")
	if err != nil {
		return apiResult{}, err
	}
	raw, err := c.svc().DV.Get(c.ctx(), schema.SetJobRuns, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.JobRun]()})
	if dataverse.IsNotFound(err) {
		return apiResult{}, notFound("There is no run %s.", id)
	}
	if err != nil {
		return apiResult{}, err
	}
	var run schema.JobRun
	if err := dataverse.Unmarshal(raw, &run); err != nil {
		return apiResult{}, err
	}
	if run.Job.ID != job.ID {
		return apiResult{}, notFound("Run %s is not a run of %s.", id, name)
	}
	v := jobRunView(name, run, job, c.api.opts.Now())
	if v.Status == "running" {
		return apiResult{status: http.StatusAccepted, body: v, location: c.r.URL.EscapedPath(), retryAfter: apiRetryAfter}, nil
	}
	return apiResult{body: v}, nil
}

// readRun reads a run just started.
//
// The job row (its lease) is read before the run: a run that ends between the two reads then shows as
// ended, never as in progress under a lease already released (which would read as abandoned).
func readRun(ctx context.Context, s *Deps, name string, id dataverse.GUID) (JobRunView, error) {
	job, err := s.Jobs.Read(ctx, name)
	if err != nil {
		return JobRunView{}, err
	}
	raw, err := s.DV.Get(ctx, schema.SetJobRuns, id, &dataverse.GetOptions{Select: dataverse.Columns[schema.JobRun]()})
	if err != nil {
		return JobRunView{}, err
	}
	var run schema.JobRun
	if err := dataverse.Unmarshal(raw, &run); err != nil {
		return JobRunView{}, err
	}
	return jobRunView(name, run, job, time.Now()), nil
}

// runningRun finds the run in progress of a job (the newest).
func runningRun(ctx context.Context, s *Deps, name string) (JobRunView, bool, error) {
	job, err := s.Jobs.Read(ctx, name)
	if err != nil {
		return JobRunView{}, false, err
	}
	q := &dataverse.Query{Select: dataverse.Columns[schema.JobRun](), Top: 1, OrderBy: []string{"csp_startedon desc"},
		Filter: dataverse.And(dataverse.LookupEq("csp_job", job.ID), dataverse.Eq("csp_status", schema.RunInProgress))}
	for raw, err := range s.DV.List(ctx, schema.SetJobRuns, q) {
		if err != nil {
			return JobRunView{}, false, err
		}
		var run schema.JobRun
		if err := dataverse.Unmarshal(raw, &run); err != nil {
			return JobRunView{}, false, err
		}
		return jobRunView(name, run, job, time.Now()), true, nil
	}
	return JobRunView{}, false, nil
}

func verifyConnectivity(c *apiCall) (apiResult, error) {
	return apiResult{body: c.svc().Conn.Verify(c.ctx())}, nil
}

func subscribeWebhook(c *apiCall) (apiResult, error) {
	var req WebhookSubscriptionRequest
	if err := c.decode(&req); err != nil {
		return apiResult{}, err
	}
	var fields []FieldError
	var eventType notify.Type
	for _, t := range notify.Types() {
		if string(t) == req.EventType {
			eventType = t
		}
	}
	if eventType == "" {
		fields = append(fields, FieldError{Field: "eventType", Message: "must be one of " + strings.Join(notificationTypeNames(), ", ")})
	}
	if msg := cmp.Or(lengthProblem(schema.TableWebhookSubscription, "csp_callbackurl", req.CallbackURL), callbackProblem(req.CallbackURL, c.svc().Callbacks)); msg != "" {
		fields = append(fields, FieldError{Field: "callbackUrl", Message: msg})
	}
	if len(fields) > 0 {
		return apiResult{}, badRequest("The subscription is not valid.", fields...)
	}
	dv := c.svc().DV
	// The same callback and event again (a flow saved twice, a retried request) is the same subscription.
	// The URLs are compared here, not in a $filter: a URL in a query string ends up in error messages.
	q := &dataverse.Query{Select: dataverse.Columns[schema.WebhookSubscription](),
		Filter: dataverse.And(dataverse.Eq("statecode", schema.StateActive), dataverse.Eq("csp_eventtype", eventType.EventType()))}
	for raw, err := range dv.List(c.ctx(), schema.SetWebhookSubscriptions, q) {
		if err != nil {
			return apiResult{}, err
		}
		var sub schema.WebhookSubscription
		if err := dataverse.Unmarshal(raw, &sub); err != nil {
			return apiResult{}, err
		}
		if subtle.ConstantTimeCompare([]byte(sub.CallbackURL), []byte(req.CallbackURL)) == 1 {
			return apiResult{status: http.StatusCreated, body: webhookView(sub), location: webhookPath(sub.ID)}, nil
		}
	}
	// A cap per caller, so one credential cannot fill the table that every event's delivery reads.
	mine := &dataverse.Query{Select: []string{"csp_webhooksubscriptionid"}, Top: MaxWebhookSubscriptionsPerCaller,
		Filter: dataverse.And(dataverse.Eq("statecode", schema.StateActive), dataverse.Eq("csp_owner", c.who.ID))}
	count := 0
	for _, err := range dv.List(c.ctx(), schema.SetWebhookSubscriptions, mine) {
		if err != nil {
			return apiResult{}, err
		}
		count++
	}
	if count >= MaxWebhookSubscriptionsPerCaller {
		e := conflict("This caller already has %d webhook subscriptions, the most one caller may have. Delete the ones no flow uses (GET %s/webhook-subscriptions lists them) and subscribe again.",
			MaxWebhookSubscriptionsPerCaller, Prefix)
		e.code = "subscription_limit"
		return apiResult{}, e
	}
	u, _ := url.Parse(req.CallbackURL)
	id, err := dv.Create(c.ctx(), schema.SetWebhookSubscriptions, dataverse.Row{
		"csp_name": schema.Fit(schema.TableWebhookSubscription, "csp_name", fmt.Sprintf("%s → %s", eventType, u.Hostname())), "csp_eventtype": eventType.EventType(),
		"csp_callbackurl": req.CallbackURL, "csp_owner": schema.Fit(schema.TableWebhookSubscription, "csp_owner", c.who.ID),
	})
	if err != nil {
		return apiResult{}, err
	}
	sub := schema.WebhookSubscription{ID: id, EventType: eventType.EventType(), CallbackURL: req.CallbackURL, Owner: c.who.ID}
	return apiResult{status: http.StatusCreated, body: webhookView(sub), location: webhookPath(id)}, nil
}

func webhookPath(id dataverse.GUID) string {
	return Prefix + "/webhook-subscriptions/" + id.String()
}

func notificationTypeNames() []string {
	var out []string
	for _, t := range notify.Types() {
		out = append(out, string(t))
	}
	return out
}

// callbackProblem checks a callback URL: absolute https (http only on loopback where allowed), no user
// information. The URL itself never goes into the message: it is a secret.
func callbackProblem(raw string, policy notify.CallbackPolicy) string {
	if raw == "" {
		return "is required"
	}
	if len(raw) > 2000 {
		return "is longer than 2000 characters"
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return "must be an absolute https URL"
	}
	if u.User != nil {
		return "must not carry a user name or password"
	}
	return policy.Problem(u)
}

func listWebhooks(c *apiCall) (apiResult, error) {
	top, cursor, err := c.pageQuery()
	if err != nil {
		return apiResult{}, err
	}
	var filters []dataverse.Filter
	if cursor != "" {
		id, err := dataverse.ParseGUID(cursor)
		if err != nil {
			return apiResult{}, badRequest("The cursor is not valid.", FieldError{Field: "cursor", Message: "is not a cursor this API gave out: take it from a nextLink"})
		}
		filters = append(filters, dataverse.Gt("csp_webhooksubscriptionid", id))
	}
	out := WebhookSubscriptionList{Value: []WebhookSubscriptionView{}}
	q := &dataverse.Query{Select: dataverse.Columns[schema.WebhookSubscription](), Filter: dataverse.And(filters...), OrderBy: []string{"csp_webhooksubscriptionid asc"}, Top: top + 1}
	for raw, err := range c.svc().DV.List(c.ctx(), schema.SetWebhookSubscriptions, q) {
		if err != nil {
			return apiResult{}, err
		}
		var sub schema.WebhookSubscription
		if err := dataverse.Unmarshal(raw, &sub); err != nil {
			return apiResult{}, err
		}
		if len(out.Value) == top {
			out.NextLink = c.nextLink(out.Value[top-1].ID, top)
			break
		}
		out.Value = append(out.Value, webhookView(sub))
	}
	return apiResult{body: out}, nil
}

// deleteWebhook removes a subscription of the caller's own. Deleting one that is gone answers 204, as
// Power Automate expects; another caller's is refused.
func deleteWebhook(c *apiCall) (apiResult, error) {
	id, err := c.id("subscriptionId")
	if err != nil {
		return apiResult{}, err
	}
	dv := c.svc().DV
	raw, err := dv.Get(c.ctx(), schema.SetWebhookSubscriptions, id, &dataverse.GetOptions{Select: []string{"csp_owner"}})
	if dataverse.IsNotFound(err) {
		return apiResult{status: http.StatusNoContent}, nil
	}
	if err != nil {
		return apiResult{}, err
	}
	var sub schema.WebhookSubscription
	if err := dataverse.Unmarshal(raw, &sub); err != nil {
		return apiResult{}, err
	}
	if sub.Owner != c.who.ID {
		return apiResult{}, &apiError{status: http.StatusForbidden, code: "not_owner",
			detail: "This webhook subscription belongs to another caller; only the caller that made it can delete it."}
	}
	err = dv.Delete(c.ctx(), schema.SetWebhookSubscriptions, id, nil)
	if err != nil && !dataverse.IsNotFound(err) {
		return apiResult{}, err
	}
	return apiResult{status: http.StatusNoContent}, nil
}

// readRow reads one row of the API's tables; a missing one is a 404 naming it.
func readRow[T any](c *apiCall, entitySet, what string, id dataverse.GUID) (T, error) {
	var row T
	raw, err := c.svc().DV.Get(c.ctx(), entitySet, id, &dataverse.GetOptions{Select: dataverse.Columns[T]()})
	if dataverse.IsNotFound(err) {
		return row, notFound("There is no %s %s.", what, id)
	}
	if err != nil {
		return row, err
	}
	return row, dataverse.Unmarshal(raw, &row)
}

// getByID serves an operation that reads one thing by the id in its path: read gets it, view makes the
// body; a missing row is a 404 naming what.
func getByID[T, V any](param, what string, read func(*apiCall, dataverse.GUID) (T, error), view func(T) V) func(*apiCall) (apiResult, error) {
	return func(c *apiCall) (apiResult, error) {
		id, err := c.id(param)
		if err != nil {
			return apiResult{}, err
		}
		v, err := read(c, id)
		if dataverse.IsNotFound(err) {
			return apiResult{}, notFound("There is no %s %s.", what, id)
		}
		if err != nil {
			return apiResult{}, err
		}
		return apiResult{body: view(v)}, nil
	}
}

func same[T any](v T) T { return v }

// knownJob answers 404 for a name that is not one of the service's jobs.
func (c *apiCall) knownJob(name string) error {
	if !slices.Contains(c.svc().Jobs.Names(), name) {
		return notFound("There is no job named %q (jobs: %s).", name, strings.Join(c.svc().Jobs.Names(), ", "))
	}
	return nil
}
