package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cspconnector/csp-connector/dataverse"
	"github.com/cspconnector/csp-connector/dataverse/schema"
)

// NoticeIcon is an in-app notification's icon (appnotification.icontype).
type NoticeIcon int

// Icons.
const (
	NoticeInfo    NoticeIcon = 100000000
	NoticeSuccess NoticeIcon = 100000001
	NoticeFailure NoticeIcon = 100000002
	NoticeWarning NoticeIcon = 100000003
)

// Notice is something people must know or do, about one row (or none).
type Notice struct {
	Title string
	Body  string
	Icon  NoticeIcon
	// Table and RowID name the row the notice is about; the notification gets an action that opens it.
	Table string
	RowID dataverse.GUID
}

// InAppNotifier sends notices as Dataverse in-app notifications (appnotification rows) to the configured
// users. Model-driven apps show them in the notification bell.
type InAppNotifier struct {
	DV         *dataverse.Client
	Recipients []dataverse.GUID // systemuser ids (CONNECTOR_NOTIFY_USERS)
}

// ErrNoRecipients is returned when a notice has nobody to go to.
var ErrNoRecipients = errors.New("no notification recipients configured (CONNECTOR_NOTIFY_USERS)")

// Notify creates one notification per recipient, in one $batch.
//
// API: POST /appnotifications (in a $batch)
func (n *InAppNotifier) Notify(ctx context.Context, nt Notice) error {
	if len(n.Recipients) == 0 {
		return ErrNoRecipients
	}
	var b dataverse.Batch
	for _, user := range n.Recipients {
		row := dataverse.Row{
			// The body holds at most 500 characters: a longer notice says the rest in the row it links to.
			"title":              schema.Fit(schema.TableAppNotification, "title", nt.Title),
			"body":               schema.Fit(schema.TableAppNotification, "body", nt.Body),
			"icontype":           int(nt.Icon),
			"toasttype":          200000000, // timed
			"ttlinseconds":       7 * 24 * 3600,
			"ownerid@odata.bind": "/" + schema.SetSystemUsers + "(" + user.String() + ")",
		}
		if nt.Table != "" {
			data, _ := json.Marshal(map[string]any{"actions": []map[string]any{{
				"title": "Open", "data": map[string]any{"url": fmt.Sprintf("?pagetype=entityrecord&etn=%s&id=%s", nt.Table, nt.RowID), "navigationTarget": "newWindow"},
			}}})
			row["data"] = string(data)
		}
		b.Add(dataverse.CreateOp(schema.SetAppNotifications, row))
	}
	results, err := n.DV.ExecuteBatch(ctx, &b, &dataverse.BatchOptions{ContinueOnError: true})
	if err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	var errs []error
	for _, r := range results {
		if r.Err != nil {
			errs = append(errs, r.Err)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("notify: %w", errors.Join(errs...))
	}
	return nil
}
