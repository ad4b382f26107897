package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"
	"github.com/google/uuid"
)

// TopicPublisher sends notifications to a Service Bus topic, where flows and other services subscribe.
type TopicPublisher struct {
	topic  string
	sender *azservicebus.Sender
}

// NewTopicPublisher returns a publisher with a sender for topic; Close closes the sender.
func NewTopicPublisher(client *azservicebus.Client, topic string) (*TopicPublisher, error) {
	if client == nil || topic == "" {
		return nil, errors.New("notifications topic: a Service Bus client and a topic name are needed")
	}
	s, err := client.NewSender(topic, nil)
	if err != nil {
		return nil, fmt.Errorf("notifications topic %s: %w", topic, err)
	}
	return &TopicPublisher{topic: topic, sender: s}, nil
}

// Publish sends nt as one message: the Payload as a JSON body, MessageID nt.ID (so duplicate detection,
// when the topic has it on, drops a retried send), Subject the type, and the application properties
// type, table and rowId, which subscription SQL rules can filter on without reading the body. An empty ID
// gets a new UUID and a zero Time the current time, as Notifications.Publish would give them.
//
// API: AMQP transfer on the topic's sender link
func (p *TopicPublisher) Publish(ctx context.Context, nt Notification) error {
	if nt.ID == "" {
		nt.ID = uuid.NewString()
	}
	if nt.Time.IsZero() {
		nt.Time = time.Now()
	}
	payload := nt.Payload()
	body, err := json.Marshal(payload)
	if err != nil {
		return &permanentError{fmt.Errorf("notifications topic %s: encode notification %s: %w", p.topic, nt.ID, err)}
	}
	subject, contentType, id := string(nt.Type), "application/json", nt.ID
	msg := &azservicebus.Message{
		Body:        body,
		ContentType: &contentType,
		MessageID:   &id,
		Subject:     &subject,
		ApplicationProperties: map[string]any{
			"type":  string(nt.Type),
			"table": payload.Table,
			"rowId": payload.RowID,
		},
	}
	if err := p.sender.SendMessage(ctx, msg, nil); err != nil {
		return fmt.Errorf("notifications topic %s: send notification %s: %w", p.topic, nt.ID, err)
	}
	return nil
}

// Close closes the sender.
func (p *TopicPublisher) Close(ctx context.Context) error {
	if err := p.sender.Close(ctx); err != nil {
		return fmt.Errorf("notifications topic %s: close: %w", p.topic, err)
	}
	return nil
}
