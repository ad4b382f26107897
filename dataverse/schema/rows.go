package schema

import (
	"time"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Typed rows for the connector's tables, read and written with dataverse.Unmarshal / Marshal / Changes.
// TestTypedRowsMatchSchema checks every tag against Schema().

// Provider is a csp_provider row.
type Provider struct {
	ID                  dataverse.GUID     `dataverse:"csp_providerid,readonly"`
	ETag                dataverse.ETag     `dataverse:"@odata.etag"`
	Name                string             `dataverse:"csp_name"`
	Type                ProviderType       `dataverse:"csp_type"`
	PartnerModel        PartnerModel       `dataverse:"csp_partnermodel"`
	AutoMatch           bool               `dataverse:"csp_automatch"`
	ConnectivityStatus  ConnectivityStatus `dataverse:"csp_connectivitystatus"`
	ConnectivityMessage string             `dataverse:"csp_connectivitymessage"`
	SystemMessage       string             `dataverse:"csp_systemmessage"`
	LastVerifiedOn      time.Time          `dataverse:"csp_lastverifiedon"`
	VerifyRequestedOn   time.Time          `dataverse:"csp_verifyrequestedon"`
	State               int                `dataverse:"statecode,readonly"`
}

// ProviderAccount is a csp_provideraccount row.
type ProviderAccount struct {
	ID             dataverse.GUID `dataverse:"csp_provideraccountid,readonly"`
	ETag           dataverse.ETag `dataverse:"@odata.etag"`
	Name           string         `dataverse:"csp_name"`
	Provider       dataverse.Ref  `dataverse:"csp_provider,lookup=csp_providers"`
	TenantID       string         `dataverse:"csp_tenantid"`
	Domain         string         `dataverse:"csp_domain"`
	CompanyName    string         `dataverse:"csp_companyname"`
	Relationship   string         `dataverse:"csp_relationship"`
	Account        dataverse.Ref  `dataverse:"csp_account,lookup=accounts"`
	MappingStatus  MappingStatus  `dataverse:"csp_mappingstatus"`
	MappingMessage string         `dataverse:"csp_mappingmessage"`
	// AutoMappedAccount is the account the connector chose by itself. An Account that differs from it on
	// an Auto-mapped row was set by a person: the row says who set it, not an event's list of columns.
	AutoMappedAccount dataverse.Ref `dataverse:"csp_automappedaccount,lookup=accounts"`
	// MappingNoticedOn is when the connector put the notice that the row needs a person into its outbox.
	// It is emptied in the same write that makes the row need a person, so a row that needs one with no
	// notice sent was left by a replica that stopped before announcing it: the next sync announces it.
	MappingNoticedOn time.Time `dataverse:"csp_mappingnoticedon"`
	LastSyncedOn     time.Time `dataverse:"csp_lastsyncedon"`
	State            int       `dataverse:"statecode,omitzero"`
	Status           int       `dataverse:"statuscode,omitzero"`
}

// AgreementTemplate is a csp_agreementtemplate row.
type AgreementTemplate struct {
	ID            dataverse.GUID `dataverse:"csp_agreementtemplateid,readonly"`
	ETag          dataverse.ETag `dataverse:"@odata.etag"`
	Name          string         `dataverse:"csp_name"`
	TemplateID    string         `dataverse:"csp_templateid"`
	AgreementType AgreementType  `dataverse:"csp_agreementtype"`
	Provider      dataverse.Ref  `dataverse:"csp_provider,lookup=csp_providers"`
	AgreementLink string         `dataverse:"csp_agreementlink"`
	// CreateRequestedOn is set by the template's Create Agreements button (or the API) and cleared by the
	// run that carries it out; CreateMessage says what the last run did and CreateDoneOn when it finished:
	// a request newer than it is still to do.
	CreateRequestedOn time.Time `dataverse:"csp_createrequestedon"`
	CreateMessage     string    `dataverse:"csp_createmessage"`
	CreateDoneOn      time.Time `dataverse:"csp_createdoneon"`
	State             int       `dataverse:"statecode,omitzero"`
}

// Agreement is a csp_agreement row.
type Agreement struct {
	ID                 dataverse.GUID    `dataverse:"csp_agreementid,readonly"`
	ETag               dataverse.ETag    `dataverse:"@odata.etag"`
	Name               string            `dataverse:"csp_name"`
	ProviderAccount    dataverse.Ref     `dataverse:"csp_provideraccount,lookup=csp_provideraccounts"`
	Account            dataverse.Ref     `dataverse:"csp_account,lookup=accounts"`
	Template           dataverse.Ref     `dataverse:"csp_agreementtemplate,lookup=csp_agreementtemplates"`
	AttestationStatus  AttestationStatus `dataverse:"csp_attestationstatus"`
	AcceptancePath     AcceptancePath    `dataverse:"csp_acceptancepath"`
	SignatoryFirstName string            `dataverse:"csp_signatoryfirstname"`
	SignatoryLastName  string            `dataverse:"csp_signatorylastname"`
	SignatoryEmail     string            `dataverse:"csp_signatoryemail"`
	SignatoryPhone     string            `dataverse:"csp_signatoryphone"`
	SignatoryCompany   string            `dataverse:"csp_signatorycompany"`
	SignatoryCountry   string            `dataverse:"csp_signatorycountry"`
	SignatoryLanguage  string            `dataverse:"csp_signatorylanguage"`
	AttestationID      string            `dataverse:"csp_attestationid"`
	AcceptanceURL      string            `dataverse:"csp_acceptanceurl"`
	LinkExpiresOn      time.Time         `dataverse:"csp_linkexpireson"`
	DateAgreed         time.Time         `dataverse:"csp_dateagreed"`
	VerifiedOn         time.Time         `dataverse:"csp_verifiedon"`
	AttestationMessage string            `dataverse:"csp_attestationmessage"`
	SystemMessage      string            `dataverse:"csp_systemmessage"`
	State              int               `dataverse:"statecode,omitzero"`
	Status             int               `dataverse:"statuscode,omitzero"`
}

// Subscription is a csp_subscription row.
type Subscription struct {
	ID                  dataverse.GUID    `dataverse:"csp_subscriptionid,readonly"`
	ETag                dataverse.ETag    `dataverse:"@odata.etag"`
	Name                string            `dataverse:"csp_name"`
	ProviderAccount     dataverse.Ref     `dataverse:"csp_provideraccount,lookup=csp_provideraccounts"`
	Account             dataverse.Ref     `dataverse:"csp_account,lookup=accounts"`
	Provider            dataverse.Ref     `dataverse:"csp_provider,lookup=csp_providers"`
	Parent              dataverse.Ref     `dataverse:"csp_parentsubscription,lookup=csp_subscriptions"`
	PCSubscriptionID    string            `dataverse:"csp_pcsubscriptionid"`
	OfferID             string            `dataverse:"csp_offerid"`
	Quantity            int               `dataverse:"csp_quantity"`
	ReductionBehavior   ReductionBehavior `dataverse:"csp_reductionbehavior"`
	ReductionWindowHrs  int               `dataverse:"csp_reductionwindow"`
	ActualProvisionedOn time.Time         `dataverse:"csp_actualprovisionedon"`
	TermDuration        string            `dataverse:"csp_termduration"`
	BillingCycle        string            `dataverse:"csp_billingcycle"`
	CommitmentEndDate   time.Time         `dataverse:"csp_commitmentenddate"`
	OfferName           string            `dataverse:"csp_offername"`
	AutoRenew           bool              `dataverse:"csp_autorenew"`
	SyncMessage         string            `dataverse:"csp_syncmessage"`
	State               int               `dataverse:"statecode,omitzero"`
	Status              int               `dataverse:"statuscode,omitzero"`
}

// LicenseChangeLog is a csp_licensechangelog row (an LCL).
type LicenseChangeLog struct {
	ID                  dataverse.GUID     `dataverse:"csp_licensechangelogid,readonly"`
	ETag                dataverse.ETag     `dataverse:"@odata.etag"`
	Name                string             `dataverse:"csp_name"`
	Subscription        dataverse.Ref      `dataverse:"csp_subscription,lookup=csp_subscriptions"`
	ChangeType          ChangeType         `dataverse:"csp_changetype"`
	Quantity            *int               `dataverse:"csp_quantity"`
	PreviousQuantity    *int               `dataverse:"csp_previousquantity"`
	EffectiveDate       time.Time          `dataverse:"csp_effectivedate"`
	ProvisioningStatus  ProvisioningStatus `dataverse:"csp_provisioningstatus"`
	ProvisioningMessage string             `dataverse:"csp_provisioningmessage"`
	SystemMessage       string             `dataverse:"csp_systemmessage"`
	AttemptID           string             `dataverse:"csp_attemptid"`
	ClaimExpiresOn      time.Time          `dataverse:"csp_claimexpireson"`
	Attempts            int                `dataverse:"csp_attempts"`
	ProvisionedOn       time.Time          `dataverse:"csp_provisionedon"`
	PCOrderID           string             `dataverse:"csp_pcorderid"`
	PCCartID            string             `dataverse:"csp_pccartid"`
	PCSubscriptionID    string             `dataverse:"csp_pcsubscriptionid"`
	HeldReason          HeldReason         `dataverse:"csp_heldreason"`
	NextAttemptOn       time.Time          `dataverse:"csp_nextattempton"`
	ChangeSource        ChangeSource       `dataverse:"csp_changesource"`
	CreatedOn           time.Time          `dataverse:"createdon,readonly"`
	State               int                `dataverse:"statecode,omitzero"`
	Status              int                `dataverse:"statuscode,omitzero"`
}

// Job is a csp_job row.
type Job struct {
	ID             dataverse.GUID `dataverse:"csp_jobid,readonly"`
	ETag           dataverse.ETag `dataverse:"@odata.etag"`
	Name           string         `dataverse:"csp_name"`
	Schedule       string         `dataverse:"csp_schedule"`
	Enabled        bool           `dataverse:"csp_enabled"`
	RunRequestedOn time.Time      `dataverse:"csp_runrequestedon"`
	LastRunOn      time.Time      `dataverse:"csp_lastrunon"`
	NextRunOn      time.Time      `dataverse:"csp_nextrunon"`
	LastStatus     RunStatus      `dataverse:"csp_laststatus"`
	LeaseOwner     string         `dataverse:"csp_leaseowner"`
	LeaseExpiresOn time.Time      `dataverse:"csp_leaseexpireson"`
	Message        string         `dataverse:"csp_message"`
}

// JobRun is a csp_jobrun row. Summary is what the run did in plain words ("3 provider(s) marked
// connected"); ErrorMessage why it failed.
type JobRun struct {
	ID           dataverse.GUID `dataverse:"csp_jobrunid,readonly"`
	ETag         dataverse.ETag `dataverse:"@odata.etag"`
	Name         string         `dataverse:"csp_name"`
	Job          dataverse.Ref  `dataverse:"csp_job,lookup=csp_jobs"`
	Trigger      RunTrigger     `dataverse:"csp_trigger"`
	StartedOn    time.Time      `dataverse:"csp_startedon"`
	FinishedOn   time.Time      `dataverse:"csp_finishedon"`
	Status       RunStatus      `dataverse:"csp_status"`
	Processed    int            `dataverse:"csp_processed"`
	Created      int            `dataverse:"csp_created"`
	Updated      int            `dataverse:"csp_updated"`
	Failed       int            `dataverse:"csp_failed"`
	Deactivated  int            `dataverse:"csp_deactivated"`
	Mapped       int            `dataverse:"csp_mapped"`
	Unmapped     int            `dataverse:"csp_unmapped"`
	Summary      string         `dataverse:"csp_summary"`
	ErrorMessage string         `dataverse:"csp_errormessage"`
	Instance     string         `dataverse:"csp_instance"`
}

// WebhookSubscription is a csp_webhooksubscription row. CallbackURL is a secret: never log it.
type WebhookSubscription struct {
	ID                  dataverse.GUID `dataverse:"csp_webhooksubscriptionid,readonly"`
	ETag                dataverse.ETag `dataverse:"@odata.etag"`
	Name                string         `dataverse:"csp_name"`
	EventType           EventType      `dataverse:"csp_eventtype"`
	CallbackURL         string         `dataverse:"csp_callbackurl"`
	Owner               string         `dataverse:"csp_owner"`
	ConsecutiveFailures int            `dataverse:"csp_consecutivefailures"`
	State               int            `dataverse:"statecode,omitzero"`
}

// Notification is a csp_notification row: one notification in the outbox.
type Notification struct {
	ID            dataverse.GUID `dataverse:"csp_notificationid,readonly"`
	ETag          dataverse.ETag `dataverse:"@odata.etag"`
	Name          string         `dataverse:"csp_name"`
	EventID       string         `dataverse:"csp_eventid"`
	Type          string         `dataverse:"csp_type"`
	Payload       string         `dataverse:"csp_payload"`
	DeliveryState string         `dataverse:"csp_deliverystate"`
	Attempts      int            `dataverse:"csp_attempts"`
	NextAttemptOn time.Time      `dataverse:"csp_nextattempton"`
	ClaimedBy     string         `dataverse:"csp_claimedby"`
	SystemMessage string         `dataverse:"csp_systemmessage"`
}

// Account is the part of a standard account row the connector reads.
type Account struct {
	ID      dataverse.GUID `dataverse:"accountid,readonly"`
	ETag    dataverse.ETag `dataverse:"@odata.etag"`
	Name    string         `dataverse:"name"`
	Website string         `dataverse:"websiteurl"`
	Email   string         `dataverse:"emailaddress1"`
}

// Contact is the part of a standard contact row the connector reads.
type Contact struct {
	ID            dataverse.GUID `dataverse:"contactid,readonly"`
	ETag          dataverse.ETag `dataverse:"@odata.etag"`
	FirstName     string         `dataverse:"firstname"`
	LastName      string         `dataverse:"lastname"`
	Email         string         `dataverse:"emailaddress1"`
	ParentAccount dataverse.Ref  `dataverse:"parentcustomerid,readonly"` // a customer lookup: read only
}
