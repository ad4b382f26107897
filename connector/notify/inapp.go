package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"

	"github.com/google/uuid"

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
		b.Add(dataverse.CreateOp(schema.SetAppNotifications, noticeRow(nt, user)))
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

// noticeRow is the appnotification row that shows nt to user.
func noticeRow(nt Notice, user dataverse.GUID) dataverse.Row {
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
			"title": "Open", "data": map[string]any{"url": openRowURL(nt.Table, nt.RowID), "navigationTarget": "newWindow"},
		}}})
		row["data"] = string(data)
	}
	return row
}

// openRowURL is the address of a row's form in the connector's app. The notice shows in the bell of every
// app with in-app notifications on, and a bare "?pagetype=entityrecord…" opens in whatever app the new
// window lands in (or the app picker); appname names the app by its unique name, which is known when the
// notice is made, unlike the app's id (appid) in each environment. Relative, it stays in the environment
// the notice came from.
func openRowURL(table string, id dataverse.GUID) string {
	return fmt.Sprintf("?appname=%s&pagetype=entityrecord&etn=%s&id=%s", url.QueryEscape(schema.AppUniqueName), url.QueryEscape(table), id)
}

// inAppNotificationID is the id of the in-app notification of event eventID for user: the same in every
// attempt and every replica, so creating it again is refused as a duplicate instead of notifying twice.
func inAppNotificationID(eventID string, user dataverse.GUID) dataverse.GUID {
	return uuid.NewSHA1(notificationNamespace, []byte(eventID+"/"+user.String()))
}

// deliver notifies the recipients of event eventID, one $batch for all, and returns those to try again.
// A recipient is done when its notification is created or was already (a duplicate id: an earlier attempt
// made it); refused says one will never get it because Dataverse refuses the notification itself (a
// recipient who is not a user any more is logged and counts as done). Each recipient's outcome is its
// own, so one that fails does not send the others a second copy.
//
// API: POST /appnotifications (in a $batch, with appnotificationid derived from the event id)
func (n *InAppNotifier) deliver(ctx context.Context, eventID string, nt Notice, recipients []dataverse.GUID, log *slog.Logger) (retry []dataverse.GUID, refused bool, err error) {
	var b dataverse.Batch
	for _, user := range recipients {
		row := noticeRow(nt, user)
		row[schema.PrimaryKey(schema.TableAppNotification)] = inAppNotificationID(eventID, user).String()
		b.Add(dataverse.CreateOp(schema.SetAppNotifications, row))
	}
	results, err := n.DV.ExecuteBatch(ctx, &b, &dataverse.BatchOptions{ContinueOnError: true})
	if err != nil {
		return recipients, false, fmt.Errorf("notify: %w", err)
	}
	var errs []error
	for i, r := range results {
		user := recipients[i]
		switch {
		case r.Err == nil || dataverse.IsDuplicate(r.Err):
		case dataverse.IsNotFound(r.Err):
			// As a webhook whose flow is gone, a user who is gone counts as done.
			log.Warn("an in-app notification recipient is not a user any more; remove them from CONNECTOR_NOTIFY_USERS", "recipient", user)
		case dataverse.IsBadRequest(r.Err) || dataverse.IsForbidden(r.Err):
			log.Warn("Dataverse refused an in-app notification for a recipient; not retried", "recipient", user, "error", r.Err)
			refused = true
		default:
			retry = append(retry, user)
			errs = append(errs, fmt.Errorf("recipient %s: %w", user, r.Err))
		}
	}
	if len(errs) > 0 {
		return retry, refused, fmt.Errorf("notify: %w", errors.Join(errs...))
	}
	return nil, refused, nil
}
