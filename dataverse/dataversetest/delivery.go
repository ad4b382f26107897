package dataversetest

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cspconnector/csp-connector/dataverse"
)

// Delivery of events to service endpoints. Each endpoint has one worker that posts its events one at a
// time in the order the writes committed, so a receiver sees one endpoint's events in order (Dataverse
// does not promise that; a connector must not rely on it). The write that raised an event never waits
// for it.

// Service Bus application properties Dataverse sets on every message (Microsoft.Xrm.Sdk ClaimTypes), and
// the one it adds when it had to drop the parameters and images of an oversized message.
const (
	ClaimOrganization              = "http://schemas.microsoft.com/xrm/2011/Claims/Organization"
	ClaimUser                      = "http://schemas.microsoft.com/xrm/2011/Claims/User"
	ClaimInitiatingUser            = "http://schemas.microsoft.com/xrm/2011/Claims/InitiatingUser"
	ClaimEntityLogicalName         = "http://schemas.microsoft.com/xrm/2011/Claims/EntityLogicalName"
	ClaimRequestName               = "http://schemas.microsoft.com/xrm/2011/Claims/RequestName"
	PropertyMessageMaxSizeExceeded = "MessageMaxSizeExceeded"
)

// webhookTimeout is how long Dataverse waits for a webhook's answer.
const webhookTimeout = 60 * time.Second

// ServiceBusTarget is the Service Bus entity a service endpoint posts to.
type ServiceBusTarget struct {
	// Endpoint is the service endpoint's name.
	Endpoint string
	// Contract is 2 (Queue), 5 (Topic) or 6 (Queue, persistent).
	Contract int
	// NamespaceAddress is sb://<namespace>.servicebus.windows.net/; Path the queue or topic.
	NamespaceAddress, Path string
	// SASKeyName is the shared access policy the endpoint authenticates with (the key is not passed on).
	SASKeyName string
}

// ServiceBusDelivery receives what Dataverse would send to Service Bus: the RemoteExecutionContext JSON
// and the message's application properties (the Claim… keys, and MessageMaxSizeExceeded when the message
// was cut). A returned error fails the delivery.
type ServiceBusDelivery func(ctx context.Context, target ServiceBusTarget, body []byte, applicationProperties map[string]any) error

// Delivery is the outcome of posting one event to one endpoint.
type Delivery struct {
	// Endpoint and EndpointID name the service endpoint; Contract is its kind (8 webhook, 2/5/6 Service Bus).
	Endpoint   string
	EndpointID dataverse.GUID
	Contract   int
	// Step and StepID name the sdkmessageprocessingstep that fired.
	Step   string
	StepID dataverse.GUID
	// Message, Table and RowID are the write: Create, Update or Delete of a row.
	Message string
	Table   string
	RowID   dataverse.GUID
	// Time is when the write happened (the event's OperationCreatedOn).
	Time time.Time
	// Attempts counts the posts made: 2 when a webhook answered 502, 503 or 504 the first time.
	Attempts int
	// StatusCode is the webhook's last HTTP status (0 when it never answered, and for Service Bus).
	StatusCode int
	// Err says why the delivery failed; empty when it succeeded.
	Err string
	// Truncated reports a message over the size limit, sent without ParentContext, InputParameters and
	// images.
	Truncated bool
	// Body is the JSON that was (or would have been) sent.
	Body []byte
}

// Delivered reports a successful delivery.
func (d Delivery) Delivered() bool { return d.Err == "" }

// job is one event waiting for its endpoint.
type job struct {
	endpoint   endpoint
	delivery   Delivery
	body       []byte
	tooLarge   bool
	headers    http.Header
	properties map[string]any
}

// deliveryBus runs the per-endpoint workers.
type deliveryBus struct {
	ctx        context.Context
	cancel     context.CancelFunc
	client     *http.Client
	serviceBus ServiceBusDelivery

	mu      sync.Mutex // guards everything below
	queues  map[string]*endpointQueue
	pending int           // events enqueued and not yet recorded
	idle    chan struct{} // closed whenever pending drops to zero
	done    []Delivery
	closed  bool
	workers sync.WaitGroup
}

type endpointQueue struct {
	jobs    []job
	running bool
}

func newDeliveryBus(opts Options) *deliveryBus {
	ctx, cancel := context.WithCancel(context.Background())
	b := &deliveryBus{ctx: ctx, cancel: cancel, client: opts.WebhookClient, serviceBus: opts.ServiceBusDelivery,
		queues: map[string]*endpointQueue{}, idle: make(chan struct{})}
	close(b.idle)
	if b.client == nil {
		// A transport of its own, so that Close can drop its connections.
		b.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	return b
}

// enqueue hands an event to its endpoint's worker, starting the worker if it is idle.
func (b *deliveryBus) enqueue(j job) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		j.delivery.Err = "the simulator is closed"
		j.delivery.Body = j.body
		b.done = append(b.done, j.delivery)
		return
	}
	if b.pending == 0 {
		b.idle = make(chan struct{})
	}
	b.pending++
	q := b.queues[j.endpoint.id]
	if q == nil {
		q = &endpointQueue{}
		b.queues[j.endpoint.id] = q
	}
	q.jobs = append(q.jobs, j)
	if !q.running {
		q.running = true
		b.workers.Add(1)
		go b.work(q)
	}
}

// work delivers one endpoint's events in order until its queue is empty.
func (b *deliveryBus) work(q *endpointQueue) {
	defer b.workers.Done()
	for {
		b.mu.Lock()
		if len(q.jobs) == 0 {
			q.running = false
			b.mu.Unlock()
			return
		}
		j := q.jobs[0]
		q.jobs = q.jobs[1:]
		b.mu.Unlock()

		d := b.deliver(j)

		b.mu.Lock()
		b.done = append(b.done, d)
		b.pending--
		if b.pending == 0 {
			close(b.idle)
		}
		b.mu.Unlock()
	}
}

// deliver posts one event and reports how it went.
func (b *deliveryBus) deliver(j job) Delivery {
	d := j.delivery
	d.Body = j.body
	if err := b.ctx.Err(); err != nil {
		d.Err = "the simulator is closed"
		return d
	}
	switch j.endpoint.contract {
	case contractWebhook:
		b.postWebhook(j, &d)
	case contractQueue, contractTopic, contractQueuePersistent:
		b.sendServiceBus(j, &d)
	default:
		d.Err = fmt.Sprintf("service endpoint contract %d is not simulated", j.endpoint.contract)
	}
	return d
}

// postWebhook POSTs the context to the endpoint's URL with Dataverse's headers and authentication. Only
// the status is read: 2xx succeeds, 502/503/504 earn exactly one more attempt, anything else fails.
func (b *deliveryBus) postWebhook(j job, d *Delivery) {
	target, header, err := webhookRequest(j)
	if err != nil {
		d.Err = err.Error()
		return
	}
	for attempt := 1; attempt <= 2; attempt++ {
		d.Attempts = attempt
		status, err := b.post(target, header, j.body)
		d.StatusCode = status
		switch {
		case err != nil:
			d.Err = err.Error()
			return
		case status >= 200 && status < 300:
			d.Err = ""
			return
		case (status == http.StatusBadGateway || status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout) && attempt == 1:
			continue
		}
		d.Err = fmt.Sprintf("the webhook answered %d %s", status, http.StatusText(status))
		return
	}
}

func (b *deliveryBus) post(target string, header http.Header, body []byte) (int, error) {
	ctx, cancel := context.WithTimeout(b.ctx, webhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = header.Clone()
	resp, err := b.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post to webhook: %w", redactError(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// redactError drops the URL, which carries the webhook key, from a client error.
func redactError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// webhookRequest applies the endpoint's authentication: a key as ?code= (4), headers (5) or query
// parameters (6) from the <settings> XML of authvalue.
func webhookRequest(j job) (string, http.Header, error) {
	u, err := url.Parse(j.endpoint.url)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", nil, fmt.Errorf("the service endpoint's url is not an absolute http(s) URL")
	}
	header := j.headers.Clone()
	q := u.Query()
	switch j.endpoint.authType {
	case authWebhookKey:
		q.Set("code", j.endpoint.authValue)
	case authHTTPHeader, authHTTPQuery:
		settings, err := parseSettings(j.endpoint.authValue)
		if err != nil {
			return "", nil, err
		}
		for _, s := range settings {
			if j.endpoint.authType == authHTTPHeader {
				header.Set(s.Name, s.Value)
			} else {
				q.Set(s.Name, s.Value)
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String(), header, nil
}

type setting struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

// parseSettings reads <settings><setting name="…" value="…" /></settings>.
func parseSettings(s string) ([]setting, error) {
	var doc struct {
		XMLName  xml.Name  `xml:"settings"`
		Settings []setting `xml:"setting"`
	}
	if err := xml.Unmarshal([]byte(s), &doc); err != nil || len(doc.Settings) == 0 {
		return nil, fmt.Errorf("the service endpoint's authvalue is not <settings><setting name=… value=… /></settings>")
	}
	return doc.Settings, nil
}

// sendServiceBus hands the message to Options.ServiceBusDelivery.
func (b *deliveryBus) sendServiceBus(j job, d *Delivery) {
	switch {
	case j.endpoint.messageFormat != formatJSON:
		d.Err = fmt.Sprintf("message format %d is not simulated: set the service endpoint's messageformat to 2 (Json)", j.endpoint.messageFormat)
		return
	case j.tooLarge:
		d.Err = "the message exceeds 192 KB even without its parameters and images: nothing was sent"
		return
	case b.serviceBus == nil:
		d.Err = "no Service Bus in the simulator (Options.ServiceBusDelivery is nil)"
		return
	}
	d.Attempts = 1
	ctx, cancel := context.WithTimeout(b.ctx, webhookTimeout)
	defer cancel()
	target := ServiceBusTarget{Endpoint: j.endpoint.name, Contract: j.endpoint.contract, NamespaceAddress: j.endpoint.namespaceAddress,
		Path: j.endpoint.path, SASKeyName: j.endpoint.sasKeyName}
	if err := b.serviceBus(ctx, target, j.body, j.properties); err != nil {
		d.Err = err.Error()
	}
}

// deliveries returns the outcomes so far, in completion order.
func (b *deliveryBus) deliveries() []Delivery {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Delivery(nil), b.done...)
}

// wait returns when no event is waiting or being delivered.
func (b *deliveryBus) wait(ctx context.Context) error {
	b.mu.Lock()
	idle := b.idle
	b.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dataversetest: waiting for event deliveries: %w", ctx.Err())
	}
}

// close stops the workers: posts in flight are abandoned, waiting events fail.
func (b *deliveryBus) close() {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.workers.Wait()
	b.client.CloseIdleConnections()
}

// Deliveries returns the outcome of every event delivered (or failed) so far, in the order they
// completed. Call WaitDeliveries first to include the events of writes just made.
func (s *Server) Deliveries() []Delivery { return s.events.deliveries() }

// WaitDeliveries waits until every event raised so far has been delivered or has failed. An event is
// raised before the write's response is sent, so a write that has returned is covered.
func (s *Server) WaitDeliveries(ctx context.Context) error { return s.events.wait(ctx) }

// ResetDeliveries forgets the deliveries recorded so far.
func (s *Server) ResetDeliveries() {
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	s.events.done = nil
}

// ClientAs returns an HTTP client for the simulator whose requests act as user: they carry the
// impersonation header MSCRMCallerID, so the writes are made by (and the events name) that user. The
// user must exist in systemuser (see Insert).
func (s *Server) ClientAs(user dataverse.GUID) *http.Client {
	c := *s.Client()
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = callerTransport{user: user.String(), next: next}
	return &c
}

type callerTransport struct {
	user string
	next http.RoundTripper
}

// RoundTrip adds the impersonation header to a copy of the request.
func (t callerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set(CallerIDHeader, t.user)
	return t.next.RoundTrip(r)
}
