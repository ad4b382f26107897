package schema

// Choice values. Custom options carry the publisher's option value prefix (OptionValuePrefix × 10000 + n)
// so anyone reading a raw value sees which solution added it. The labels live beside the values in
// Tables(); these constants are what code compares against.

// OptionValuePrefix is the csp publisher's choice value prefix.
const OptionValuePrefix = 41870

const optionBase = OptionValuePrefix * 10000

// ProviderType is csp_provider.csp_type: how changes reach the provider.
type ProviderType int

// Provider types.
const (
	ProviderAutomatic ProviderType = optionBase + iota // changes are pushed to the provider's API
	ProviderManual                                     // a person makes the change in the provider's portal
	ProviderDoNothing                                  // changes are recorded only
)

// PartnerModel is csp_provider.csp_partnermodel: how the partner buys from Microsoft.
type PartnerModel int

// Partner models.
const (
	PartnerDirectBill PartnerModel = optionBase + iota
	PartnerIndirectProvider
	PartnerIndirectReseller
)

// ConnectivityStatus is csp_provider.csp_connectivitystatus.
type ConnectivityStatus int

// Connectivity states.
const (
	ConnectivityNotVerified ConnectivityStatus = optionBase + iota
	ConnectivityConnected
	ConnectivityNotConnected
)

// MappingStatus is csp_provideraccount.csp_mappingstatus.
type MappingStatus int

// Mapping states.
const (
	MappingUnmapped MappingStatus = optionBase + iota
	MappingAutoMapped
	MappingMapped
	MappingAmbiguous
)

// AgreementType is csp_agreementtemplate.csp_agreementtype.
type AgreementType int

// Agreement types.
const (
	AgreementMicrosoftCustomerAgreement AgreementType = optionBase + iota
	AgreementMicrosoftCloudAgreement
	AgreementPartner
)

// AttestationStatus is csp_agreement.csp_attestationstatus.
type AttestationStatus int

// Attestation states (DESIGN §6), plus Link requested: the value an admin sets to ask for a link.
const (
	AttestationNotStarted AttestationStatus = optionBase + iota
	AttestationLinkRequested
	AttestationLinkSent
	AttestationCustomerAccepted
	AttestationAttested
	AttestationAcceptedDirectly
	AttestationExpired
	AttestationFailed
)

// AcceptancePath is csp_agreement.csp_acceptancepath: how the customer accepted.
type AcceptancePath int

// Acceptance paths.
const (
	AcceptanceLink AcceptancePath = optionBase + iota
	AcceptancePartnerAttestation
	AcceptanceAdminCenter
	AcceptanceManual
)

// ReductionBehavior is csp_subscription.csp_reductionbehavior.
type ReductionBehavior int

// Seat reduction behaviours.
const (
	ReductionAllowed ReductionBehavior = optionBase + iota
	ReductionDisallowed
	ReductionAllowedWithinWindow
)

// ChangeType is csp_licensechangelog.csp_changetype.
type ChangeType int

// LCL change types.
const (
	ChangePurchase ChangeType = optionBase + iota
	ChangeQuantity
	ChangeSuspend
	ChangeReactivate
	ChangeCancel
	// ChangeRenewal is a change of auto-renew or term that Partner Center made on its own; recorded by the
	// subscription sync with source Provider, never pushed.
	ChangeRenewal
)

// ProvisioningStatus is csp_licensechangelog.csp_provisioningstatus.
type ProvisioningStatus int

// Provisioning states.
const (
	ProvisioningAwaiting ProvisioningStatus = optionBase + iota
	ProvisioningInProgress
	ProvisioningProvisioned
	ProvisioningFailed
	ProvisioningNotApplicable
)

// HeldReason is csp_licensechangelog.csp_heldreason: why an LCL still Awaiting Provisioning has not been
// pushed yet. The sweep uses it with csp_nextattempton to pick held LCLs up again.
type HeldReason int

// Reasons an LCL is held.
const (
	HeldScheduled        HeldReason = optionBase + iota // effective date in the future
	HeldWaitingForParent                                // add-on whose parent subscription is not provisioned
	HeldBlocked                                         // an earlier change of the subscription comes first
	HeldManual                                          // a person makes the change in the provider's portal
	HeldNotConnected                                    // credentials, consent or connectivity failed
	HeldRetrying                                        // throttled or an outage: tried again at csp_nextattempton
)

// ChangeSource is csp_licensechangelog.csp_changesource.
type ChangeSource int

// Change sources.
const (
	SourceDynamics ChangeSource = optionBase + iota
	SourceProvider
)

// RunStatus is csp_job.csp_laststatus and csp_jobrun.csp_status.
type RunStatus int

// Run states.
const (
	RunInProgress RunStatus = optionBase + iota
	RunSucceeded
	RunPartiallySucceeded
	RunFailed
	RunCancelled
)

// RunTrigger is csp_jobrun.csp_trigger.
type RunTrigger int

// Run triggers.
const (
	TriggerSchedule RunTrigger = optionBase + iota
	TriggerRunNow
	TriggerAPI
)

// EventType is csp_webhooksubscription.csp_eventtype.
type EventType int

// Webhook event types.
const (
	EventProviderAccountNeedsMapping EventType = optionBase + iota
	EventLCLFailed
	EventAgreementAccepted
	EventJobFailed
	EventSubscriptionDrift
)

// Status reasons (statuscode). 1 and 2 are the Active and Inactive every table has.
const (
	StatusActive   = 1
	StatusInactive = 2
	// AgreementPending: an agreement waiting for the customer (state Active).
	AgreementPending = optionBase + 100
	// SubscriptionSuspended: a subscription suspended in the provider (state Active, it can be reactivated).
	SubscriptionSuspended = optionBase + 101
	// LCLArchived: a change log taken out of the queue by a person (state Inactive).
	LCLArchived = optionBase + 102
)

// States (statecode).
const (
	StateActive   = 0
	StateInactive = 1
)

// OptionValue lets the choice types be used directly as filter values.
func (v ProviderType) OptionValue() int       { return int(v) }
func (v PartnerModel) OptionValue() int       { return int(v) }
func (v ConnectivityStatus) OptionValue() int { return int(v) }
func (v MappingStatus) OptionValue() int      { return int(v) }
func (v AgreementType) OptionValue() int      { return int(v) }
func (v AttestationStatus) OptionValue() int  { return int(v) }
func (v AcceptancePath) OptionValue() int     { return int(v) }
func (v ReductionBehavior) OptionValue() int  { return int(v) }
func (v ChangeType) OptionValue() int         { return int(v) }
func (v ProvisioningStatus) OptionValue() int { return int(v) }
func (v ChangeSource) OptionValue() int       { return int(v) }
func (v HeldReason) OptionValue() int         { return int(v) }
func (v RunStatus) OptionValue() int          { return int(v) }
func (v RunTrigger) OptionValue() int         { return int(v) }
func (v EventType) OptionValue() int          { return int(v) }
