package api

import (
	"fmt"
	"net/url"
	"time"

	"github.com/cspconnector/csp-connector/connector/agreements"
	"github.com/cspconnector/csp-connector/connector/jobs"
	"github.com/cspconnector/csp-connector/connector/notify"
	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// The API's bodies. Their tags are their documentation in the OpenAPI document (openapi.go): every
// field needs a desc, every type an entry in typeDocs. Times are RFC 3339 in UTC; absent values are left
// out rather than null (OpenAPI 2.0 has no null).

// typeDocs describes each body type of the OpenAPI document.
var typeDocs = map[string]string{
	"ProviderAccountView":        "A provider account: one customer tenant of a provider, and the Dynamics 365 account it maps to.",
	"ProviderAccountList":        "A page of provider accounts.",
	"MapRequest":                 "The account to map a provider account to.",
	"AgreementView":              "An agreement: the Microsoft Customer Agreement of one customer, and where its acceptance stands.",
	"LinkRequest":                "The customer's signatory, who receives the acceptance link.",
	"AgreementTemplateView":      "An agreement template.",
	"AgreementTemplateList":      "The active agreement templates.",
	"TemplateCreation":           "The Create Agreements request of a template: whether it is done and what it did.",
	"LCLState":                   "A license change log as people see it on the form.",
	"ProvisionRequest":           "How to provision a license change now.",
	"Diagnosis":                  "What the connector would do with a license change and why; nothing was changed to make it.",
	"PartnerCenterView":          "Partner Center's copy of the subscription, as the decision saw it.",
	"Decision":                   "The provisioning decision, with every check it made.",
	"DecisionCheck":              "One rule of the decision and its result.",
	"ConnectivityCheck":          "One connectivity check and its result.",
	"SubscriptionDiagnosis":      "A subscription and its license changes, oldest first.",
	"SubscriptionLCL":            "One license change of the subscription, with what holds or fails it.",
	"JobView":                    "A scheduled job of the connector.",
	"JobList":                    "The connector's jobs.",
	"JobRunView":                 "One run of a job.",
	"JobRunList":                 "A page of a job's runs, newest first.",
	"ConnectivityReport":         "What the connectivity check found.",
	"WebhookSubscriptionRequest": "A subscription to connector events.",
	"WebhookSubscriptionView":    "A webhook subscription; the callback URL is a secret and is not shown.",
	"WebhookSubscriptionList":    "The webhook subscriptions.",
	"ConnectorEvent":             "An event the connector posts to a subscription's callback.",
	"EventData":                  "The event's machine-readable fields; which are present depends on the event type.",
	"EventCandidate":             "An account that may be the provider account's, with why.",
	"EventDrift":                 "A subscription that differs from Partner Center, what changed and what the sync did.",
	"Problem":                    "An error: what went wrong and what to do.",
	"FieldError":                 "One field of the request that is not valid.",
}

// ProviderAccountView is a provider account in the API.
type ProviderAccountView struct {
	ID             string     `json:"id" desc:"The provider account's row id in Dataverse."`
	Name           string     `json:"name" desc:"The provider account's name."`
	TenantID       string     `json:"tenantId,omitempty" desc:"The customer's Microsoft Entra tenant id."`
	CompanyName    string     `json:"companyName,omitempty" desc:"The customer's company name in Partner Center."`
	Domain         string     `json:"domain,omitempty" desc:"The customer's default domain."`
	ProviderID     string     `json:"providerId,omitempty" desc:"The provider's row id."`
	AccountID      string     `json:"accountId,omitempty" desc:"The Dynamics 365 account it maps to, when mapped."`
	MappingStatus  string     `json:"mappingStatus,omitempty" desc:"How it maps to an account." enum:"unmapped,auto-mapped,mapped,ambiguous"`
	MappingMessage string     `json:"mappingMessage,omitempty" desc:"Why it maps as it does, or what a person must do."`
	Active         bool       `json:"active" desc:"False when the customer left the provider."`
	LastSyncedOn   *time.Time `json:"lastSyncedOn,omitempty" desc:"When the sync last read it from Partner Center."`
}

// ProviderAccountList is a page of provider accounts.
type ProviderAccountList struct {
	Value    []ProviderAccountView `json:"value" desc:"The provider accounts of this page."`
	NextLink string                `json:"nextLink,omitempty" desc:"The next page's URL; absent on the last page."`
}

// MapRequest is the body of MapProviderAccount.
type MapRequest struct {
	AccountID string `json:"accountId" desc:"The row id of the Dynamics 365 account." summary:"Account ID" required:"true"`
}

// AgreementView is an agreement in the API.
type AgreementView struct {
	ID                 string     `json:"id" desc:"The agreement's row id in Dataverse."`
	Name               string     `json:"name" desc:"The agreement's name."`
	ProviderAccountID  string     `json:"providerAccountId,omitempty" desc:"The provider account (customer tenant) it is for."`
	AccountID          string     `json:"accountId,omitempty" desc:"The Dynamics 365 account."`
	TemplateID         string     `json:"templateId,omitempty" desc:"The agreement template."`
	Status             string     `json:"status" desc:"Pending until the customer accepted, then Active; Inactive when no longer checked." enum:"Pending,Active,Inactive"`
	AttestationStatus  string     `json:"attestationStatus" desc:"Where the acceptance stands, as the form shows it (Not started, Link sent, Attested, Accepted directly, Expired, Failed…)."`
	AcceptancePath     string     `json:"acceptancePath,omitempty" desc:"How the customer accepted: Acceptance link, Partner attestation (since 5 January 2026 also through Microsoft's acceptance link: the legacy form was retired), Microsoft 365 admin center or Manual."`
	AcceptanceURL      string     `json:"acceptanceUrl,omitempty" desc:"Microsoft's acceptance link sent to the signatory."`
	LinkExpiresOn      *time.Time `json:"linkExpiresOn,omitempty" desc:"When the acceptance link expires."`
	DateAgreed         *time.Time `json:"dateAgreed,omitempty" desc:"When the customer accepted, as Partner Center reports it."`
	VerifiedOn         *time.Time `json:"verifiedOn,omitempty" desc:"When the connector last confirmed the acceptance with Partner Center."`
	Message            string     `json:"message,omitempty" desc:"What happened and what to do, in plain words."`
	SignatoryFirstName string     `json:"signatoryFirstName,omitempty" desc:"The signatory's first name."`
	SignatoryLastName  string     `json:"signatoryLastName,omitempty" desc:"The signatory's last name."`
	SignatoryEmail     string     `json:"signatoryEmail,omitempty" desc:"The signatory's e-mail address."`
}

// LinkRequest is the body of RequestAcceptanceLink; empty fields keep the agreement's.
type LinkRequest struct {
	SignatoryFirstName string `json:"signatoryFirstName,omitempty" desc:"The first name of the person at the customer who accepts."`
	SignatoryLastName  string `json:"signatoryLastName,omitempty" desc:"The last name of the person at the customer who accepts."`
	SignatoryEmail     string `json:"signatoryEmail,omitempty" desc:"The e-mail address the link is sent to." summary:"Signatory E-mail"`
	SignatoryPhone     string `json:"signatoryPhone,omitempty" desc:"The signatory's phone number (optional)."`
	SignatoryCompany   string `json:"signatoryCompany,omitempty" desc:"The customer's company name as the agreement should show it."`
	SignatoryCountry   string `json:"signatoryCountry,omitempty" desc:"The customer's country as an ISO 3166-1 alpha-2 code, such as GB."`
	SignatoryLanguage  string `json:"signatoryLanguage,omitempty" desc:"The agreement's language, such as en-GB."`
}

// signatory is the request's signatory, for the agreements workflow.
func (r LinkRequest) signatory() agreements.Signatory {
	return agreements.Signatory{FirstName: r.SignatoryFirstName, LastName: r.SignatoryLastName, Email: r.SignatoryEmail, Phone: r.SignatoryPhone,
		Company: r.SignatoryCompany, Country: r.SignatoryCountry, Language: r.SignatoryLanguage}
}

// lengthProblem says why value does not fit the declared length of table.column, or "" when it fits.
// Lengths count as Dataverse counts them (dataverse.TextLength).
func lengthProblem(table, column, value string) string {
	if n, limit := dataverse.TextLength(value), schema.MaxLength(table, column); limit > 0 && n > limit {
		return fmt.Sprintf("is %d characters long; at most %d fit", n, limit)
	}
	return ""
}

// AgreementTemplateView is a template in the API.
type AgreementTemplateView struct {
	ID            string `json:"id" desc:"The template's row id."`
	Name          string `json:"name" desc:"The template's name."`
	ProviderID    string `json:"providerId,omitempty" desc:"The provider whose customers it is for."`
	AgreementType string `json:"agreementType,omitempty" desc:"The kind of agreement."`
}

// AgreementTemplateList lists templates.
type AgreementTemplateList struct {
	Value []AgreementTemplateView `json:"value" desc:"The templates."`
}

// TemplateCreation is the status of a template's Create Agreements request.
type TemplateCreation struct {
	TemplateID  string     `json:"templateId" desc:"The template's row id."`
	Status      string     `json:"status" desc:"running while the agreements are being created, done when finished." enum:"running,done"`
	RequestedOn *time.Time `json:"requestedOn,omitempty" desc:"When it was requested, while it waits or runs (the request is cleared once carried out)."`
	DoneOn      *time.Time `json:"doneOn,omitempty" desc:"When it finished."`
	Message     string     `json:"message,omitempty" desc:"What the last creation did, in plain words."`
}

func templateCreation(t schema.AgreementTemplate) TemplateCreation {
	out := TemplateCreation{TemplateID: t.ID.String(), Status: "done", RequestedOn: timePtr(t.CreateRequestedOn), Message: t.CreateMessage}
	if agreements.CreationPending(t) {
		out.Status = "running"
		out.Message = ""
	} else {
		out.DoneOn = timePtr(t.CreateDoneOn)
	}
	return out
}

// ProvisionRequest is the body of ProvisionLicenseChangeLog.
type ProvisionRequest struct {
	Retry bool `json:"retry,omitempty" desc:"Set a Failed Provisioning change back to Awaiting Provisioning first (after fixing what its message says)."`
}

// JobView is a job in the API.
type JobView struct {
	Name       string     `json:"name" desc:"The job's name."`
	Enabled    bool       `json:"enabled" desc:"Whether it runs on its schedule."`
	Schedule   string     `json:"schedule" desc:"How often it runs, as a duration such as 15m or 6h."`
	LastRunOn  *time.Time `json:"lastRunOn,omitempty" desc:"When it last started."`
	NextRunOn  *time.Time `json:"nextRunOn,omitempty" desc:"When it runs next."`
	LastStatus string     `json:"lastStatus,omitempty" desc:"How the last run ended." enum:"succeeded,partly succeeded,failed,cancelled,running"`
	Running    bool       `json:"running" desc:"Whether a replica runs it now."`
	Message    string     `json:"message,omitempty" desc:"What the last run did, in plain words."`
}

// JobList lists jobs.
type JobList struct {
	Value []JobView `json:"value" desc:"The jobs."`
}

// JobRunView is a run in the API.
type JobRunView struct {
	ID         string     `json:"id" desc:"The run's row id."`
	Job        string     `json:"job" desc:"The job's name."`
	Status     string     `json:"status" desc:"running until it ends; abandoned when its replica stopped without finishing it." enum:"running,succeeded,partly succeeded,failed,cancelled,abandoned"`
	Trigger    string     `json:"trigger,omitempty" desc:"What started it: schedule, run_now or api."`
	StartedOn  time.Time  `json:"startedOn" desc:"When it started."`
	FinishedOn *time.Time `json:"finishedOn,omitempty" desc:"When it ended."`
	Processed  int        `json:"processed" desc:"Items it handled."`
	Created    int        `json:"created" desc:"Rows it created."`
	Updated    int        `json:"updated" desc:"Rows it updated."`
	Failed     int        `json:"failed" desc:"Items that failed."`
	Summary    string     `json:"summary,omitempty" desc:"What it did, in plain words."`
	Error      string     `json:"error,omitempty" desc:"Why it failed, in plain words."`
	Instance   string     `json:"instance,omitempty" desc:"The replica that ran it."`
}

// JobRunList is a page of runs.
type JobRunList struct {
	Value    []JobRunView `json:"value" desc:"The runs of this page, newest first."`
	NextLink string       `json:"nextLink,omitempty" desc:"The next page's URL; absent on the last page."`
}

// WebhookSubscriptionRequest is the body of OnConnectorEvent.
type WebhookSubscriptionRequest struct {
	CallbackURL string `json:"callbackUrl" desc:"Where the connector posts events (filled in by Power Automate)." summary:"Callback URL" visibility:"internal" notificationurl:"true" required:"true"`
	EventType   string `json:"eventType" desc:"The event that starts the flow." enum:"ProviderAccountNeedsMapping,LicenseChangeFailed,AgreementAccepted,JobFailed,SubscriptionDrift" visibility:"important" required:"true"`
}

// WebhookSubscriptionView is a subscription in the API.
type WebhookSubscriptionView struct {
	ID                  string `json:"id" desc:"The subscription's id."`
	EventType           string `json:"eventType" desc:"The event it receives."`
	CallbackHost        string `json:"callbackHost,omitempty" desc:"The host of the callback URL (the URL itself is a secret)."`
	Owner               string `json:"owner,omitempty" desc:"Who subscribed: tenant and object id, or the API key's name."`
	ConsecutiveFailures int    `json:"consecutiveFailures" desc:"Deliveries that failed in a row."`
}

// WebhookSubscriptionList lists subscriptions.
type WebhookSubscriptionList struct {
	Value    []WebhookSubscriptionView `json:"value" desc:"The subscriptions."`
	NextLink string                    `json:"nextLink,omitempty" desc:"The next page's URL; absent on the last page."`
}

// ConnectorEvent documents Payload, what callbacks receive (Payload's Data is a map; EventData lists its keys).
type ConnectorEvent struct {
	ID      string    `json:"id" desc:"The event's id: the same event may arrive more than once; de-duplicate on it."`
	Type    string    `json:"type" desc:"The event type." enum:"ProviderAccountNeedsMapping,LicenseChangeFailed,AgreementAccepted,JobFailed,SubscriptionDrift"`
	Time    string    `json:"time" desc:"When it happened (RFC 3339, UTC)."`
	Title   string    `json:"title" desc:"A one-line summary for people."`
	Message string    `json:"message" desc:"What happened and what to do, in plain words."`
	Table   string    `json:"table" desc:"The Dataverse table of the row it is about (empty when none)."`
	RowID   string    `json:"rowId" desc:"The id of that row (empty when none)."`
	Data    EventData `json:"data" desc:"The event's machine-readable fields."`
}

// EventData lists every key a Payload's Data may hold.
type EventData struct {
	ProviderAccountID string           `json:"providerAccountId,omitempty" desc:"The provider account (needs mapping)."`
	ProviderID        string           `json:"providerId,omitempty" desc:"Its provider."`
	Provider          string           `json:"provider,omitempty" desc:"Its provider's name."`
	TenantID          string           `json:"tenantId,omitempty" desc:"The customer tenant."`
	CompanyName       string           `json:"companyName,omitempty" desc:"The customer's company name."`
	Domain            string           `json:"domain,omitempty" desc:"The customer's default domain."`
	MappingStatus     string           `json:"mappingStatus,omitempty" desc:"Unmapped or Ambiguous."`
	Candidates        []EventCandidate `json:"candidates,omitempty" desc:"The accounts that fit, best first (Ambiguous)."`
	Digest            bool             `json:"digest,omitempty" desc:"True when one event stands for many rows (see count)."`
	Count             int              `json:"count,omitempty" desc:"How many rows a digest stands for."`
	AgreementID       string           `json:"agreementId,omitempty" desc:"The agreement (accepted)."`
	AcceptancePath    string           `json:"acceptancePath,omitempty" desc:"How the customer accepted."`
	LicenseChangeID   string           `json:"licenseChangeLogId,omitempty" desc:"The license change log (failed)."`
	Job               string           `json:"job,omitempty" desc:"The job (failed)."`
	RunID             string           `json:"runId,omitempty" desc:"The failed run."`
	Drifts            []EventDrift     `json:"drifts,omitempty" desc:"The subscriptions that drifted (subscription drift; the first 20 when there are more, see count)."`
	Seen              int              `json:"seen,omitempty" desc:"The subscriptions the sync saw (subscription drift)."`
}

// EventDrift is one subscription a SubscriptionDrift event names.
type EventDrift struct {
	SubscriptionID   string `json:"subscriptionId,omitempty" desc:"The subscription's row id in Dataverse."`
	PCSubscriptionID string `json:"pcSubscriptionId" desc:"Partner Center's subscription id."`
	TenantID         string `json:"tenantId" desc:"The customer tenant."`
	Name             string `json:"name,omitempty" desc:"The subscription's name."`
	Change           string `json:"change" desc:"What changed, in plain words (Seats 10 → 12)."`
	Outcome          string `json:"outcome" desc:"Recorded (the row updated and a Provider license change created), Blocked (a change of ours is in flight: nothing written) or Missing (Partner Center no longer lists it)."`
	LicenseChangeID  string `json:"licenseChangeLogId,omitempty" desc:"The Provider license change recorded."`
}

// EventCandidate is an account that may be a provider account's.
type EventCandidate struct {
	AccountID string   `json:"accountId" desc:"The account's row id."`
	Name      string   `json:"name" desc:"The account's name."`
	Score     int      `json:"score" desc:"How well it fits (50 and more: a match)."`
	Reasons   []string `json:"reasons" desc:"What matched."`
}

func providerAccountView(pa schema.ProviderAccount) ProviderAccountView {
	return ProviderAccountView{ID: pa.ID.String(), Name: pa.Name, TenantID: pa.TenantID, CompanyName: pa.CompanyName, Domain: pa.Domain,
		ProviderID: refString(pa.Provider), AccountID: refString(pa.Account), MappingStatus: mappingStatusName(pa.MappingStatus),
		MappingMessage: pa.MappingMessage, Active: pa.State == schema.StateActive, LastSyncedOn: timePtr(pa.LastSyncedOn)}
}

func agreementView(a schema.Agreement) AgreementView {
	status := "Pending"
	switch {
	case a.State != schema.StateActive:
		status = "Inactive"
	case a.Status == schema.StatusActive:
		status = "Active"
	}
	return AgreementView{ID: a.ID.String(), Name: a.Name, ProviderAccountID: refString(a.ProviderAccount), AccountID: refString(a.Account),
		TemplateID: refString(a.Template), Status: status,
		AttestationStatus: schema.OptionLabel(schema.TableAgreement, "csp_attestationstatus", int(a.AttestationStatus)),
		AcceptancePath:    schema.OptionLabel(schema.TableAgreement, "csp_acceptancepath", int(a.AcceptancePath)),
		AcceptanceURL:     a.AcceptanceURL, LinkExpiresOn: timePtr(a.LinkExpiresOn), DateAgreed: timePtr(a.DateAgreed), VerifiedOn: timePtr(a.VerifiedOn),
		Message: a.AttestationMessage, SignatoryFirstName: a.SignatoryFirstName, SignatoryLastName: a.SignatoryLastName, SignatoryEmail: a.SignatoryEmail}
}

func jobView(row schema.Job, now time.Time) JobView {
	v := JobView{Name: row.Name, Enabled: row.Enabled, Schedule: row.Schedule, LastRunOn: timePtr(row.LastRunOn), NextRunOn: timePtr(row.NextRunOn),
		Running: row.LeaseOwner != "" && now.Before(row.LeaseExpiresOn), Message: row.Message}
	if row.LastStatus != 0 {
		v.LastStatus = jobs.RunStatusWord(row.LastStatus)
		if row.LastStatus == schema.RunInProgress {
			v.LastStatus = "running"
		}
	}
	return v
}

// RunResultView is a finished run as the API shows it, for `connector jobs run -o json`.
func RunResultView(res jobs.RunResult) JobRunView {
	v := JobRunView{ID: res.RunID.String(), Job: res.Job, Status: jobs.RunStatusWord(res.Status), Trigger: jobs.TriggerName(res.Trigger),
		StartedOn: res.Started.UTC(), FinishedOn: timePtr(res.Ended.UTC()), Processed: res.Counts.Processed, Created: res.Counts.Created,
		Updated: res.Counts.Updated, Failed: res.Counts.Failed, Summary: res.Counts.Summary}
	if res.Err != nil {
		v.Error = res.Err.Error()
	}
	return v
}

// jobRunView is a run; one still in progress whose job no replica holds any more was abandoned (its
// replica stopped mid-run).
func jobRunView(name string, run schema.JobRun, job schema.Job, now time.Time) JobRunView {
	v := JobRunView{ID: run.ID.String(), Job: name, Trigger: jobs.TriggerName(run.Trigger), StartedOn: run.StartedOn.UTC(), FinishedOn: timePtr(run.FinishedOn),
		Processed: run.Processed, Created: run.Created, Updated: run.Updated, Failed: run.Failed, Summary: run.Summary, Error: run.ErrorMessage, Instance: run.Instance}
	switch {
	case run.Status == schema.RunInProgress && (job.LeaseOwner == "" || !now.Before(job.LeaseExpiresOn)):
		v.Status = "abandoned"
	case run.Status == schema.RunInProgress:
		v.Status = "running"
	default:
		v.Status = jobs.RunStatusWord(run.Status)
	}
	return v
}

func webhookView(s schema.WebhookSubscription) WebhookSubscriptionView {
	v := WebhookSubscriptionView{ID: s.ID.String(), Owner: s.Owner, ConsecutiveFailures: s.ConsecutiveFailures}
	for _, t := range notify.Types() {
		if t.EventType() == s.EventType {
			v.EventType = string(t)
		}
	}
	if u, err := url.Parse(s.CallbackURL); err == nil {
		v.CallbackHost = u.Hostname()
	}
	return v
}

func refString(r dataverse.Ref) string {
	if r.IsZero() {
		return ""
	}
	return r.ID.String()
}

// timePtr is t in UTC, or nil for the zero time (JSON null rather than 0001-01-01).
func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
