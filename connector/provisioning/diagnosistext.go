package provisioning

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cspconnector/csp-connector/mapping"
)

// WriteText writes the diagnosis as `connector diagnose lcl` prints it and the row's Diagnosis column
// holds it: the row, each check with its rule, Partner Center's view, the verdict and the next step.
func (dg Diagnosis) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "License change\t%s\n", orDash(dg.LCL.Name))
	fmt.Fprintf(tw, "Id\t%s\n", dg.LCL.ID)
	WriteState(tw, dg.LCL)
	_ = tw.Flush()

	fmt.Fprintln(w, "\nChecks (rule number, or - for a preliminary)")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range dg.Decision.Checks {
		mark, rule := "✓", "-"
		if !c.Passed {
			mark = "✗"
		}
		if c.Rule > 0 {
			rule = strconv.Itoa(c.Rule)
		}
		for i, line := range strings.Split(strings.TrimRight(c.Detail, "\n"), "\n") {
			if i == 0 {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", mark, rule, c.Name, line)
			} else {
				fmt.Fprintf(tw, "  \t\t\t%s\n", line)
			}
		}
	}
	_ = tw.Flush()

	if pc := dg.PartnerCenter; pc != nil {
		fmt.Fprintln(w, "\nPartner Center")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "  Subscription\t%s\n", pc.SubscriptionID)
		if pc.ReadError != "" {
			field(tw, "  Could not read it", pc.ReadError)
			if pc.ReadErrorSystemText != "" {
				field(tw, "  Detail", pc.ReadErrorSystemText)
			}
		} else {
			fmt.Fprintf(tw, "  Status\t%s\n", pc.Status)
			fmt.Fprintf(tw, "  Quantity\t%d\n", pc.Quantity)
			fmt.Fprintf(tw, "  Refundable now\t%d seat(s)\n", pc.RefundableNow)
			until := "-"
			if pc.CancellableUntil != nil {
				until = mapping.FormatTime(*pc.CancellableUntil)
			}
			fmt.Fprintf(tw, "  Cancellable until\t%s\n", until)
			if pc.CommitmentEndDate != nil {
				fmt.Fprintf(tw, "  Term ends\t%s\n", mapping.FormatTime(*pc.CommitmentEndDate))
			}
		}
		_ = tw.Flush()
	}

	verdict := dg.Decision.Verdict.String()
	if dg.Decision.HeldLabel != "" {
		verdict += " (" + dg.Decision.HeldLabel + ")"
	}
	fmt.Fprintf(w, "\nVerdict: %s\n", verdict)
	fmt.Fprintf(w, "Next: %s\n", dg.Next)
}

// Text is WriteText into a string.
func (dg Diagnosis) Text() string {
	var b bytes.Buffer
	dg.WriteText(&b)
	return b.String()
}

// WriteState writes the row as the form shows it, one field a line, into a tabwriter.
func WriteState(tw io.Writer, st LCLState) {
	change := st.ChangeType
	if st.Quantity != nil {
		change += fmt.Sprintf(", %d seat(s)", *st.Quantity)
	}
	if !st.EffectiveDate.IsZero() {
		change += ", effective " + mapping.FormatTime(st.EffectiveDate)
	}
	fmt.Fprintf(tw, "Change\t%s\n", change)
	fmt.Fprintf(tw, "Status\t%s\n", st.Status)
	fmt.Fprintf(tw, "Held\t%s\n", orDash(st.Held))
	fmt.Fprintf(tw, "Next attempt\t%s\n", when(st.NextAttemptOn))
	fmt.Fprintf(tw, "Attempts\t%d\n", st.Attempts)
	if !st.ClaimExpiresOn.IsZero() {
		fmt.Fprintf(tw, "Claimed\tby attempt %s until %s\n", st.AttemptID, mapping.FormatTime(st.ClaimExpiresOn))
	}
	if !st.ProvisionedOn.IsZero() {
		fmt.Fprintf(tw, "Provisioned on\t%s\n", mapping.FormatTime(st.ProvisionedOn))
	}
	if st.PCCartID != "" || st.PCOrderID != "" {
		fmt.Fprintf(tw, "Cart / order\t%s / %s\n", orDash(st.PCCartID), orDash(st.PCOrderID))
	}
	field(tw, "Message", orDash(st.Message))
	field(tw, "System message", orDash(st.SystemMessage))
}

// WriteText writes the subscription's diagnosis as `connector diagnose subscription` prints it and the
// row's Diagnosis column holds it: the subscription, then its changes oldest first with what blocks them.
func (sd SubscriptionDiagnosis) WriteText(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Subscription\t%s\n", orDash(sd.Name))
	fmt.Fprintf(tw, "Id\t%s\n", sd.ID)
	pcID := sd.PCSubscriptionID
	if pcID == "" {
		pcID = "- (not in Partner Center yet)"
	}
	fmt.Fprintf(tw, "Partner Center\t%s\n", pcID)
	fmt.Fprintf(tw, "Quantity\t%d\n", sd.Quantity)
	fmt.Fprintf(tw, "Status\t%s\n", sd.Status)
	_ = tw.Flush()

	if len(sd.Changes) == 0 {
		fmt.Fprintln(w, "\nNo license changes.")
		return
	}
	fmt.Fprintf(w, "\nLicense changes, oldest first (%d)\n", len(sd.Changes))
	// The table is aligned on its own, then each change's blocker goes on the line under it: a line without
	// cells inside a tabwriter block would end the block and break the alignment.
	var table bytes.Buffer
	tw = tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tNAME\tCHANGE\tQUANTITY\tEFFECTIVE\tSTATUS\tHELD")
	for i, c := range sd.Changes {
		quantity := "-"
		if c.Quantity != nil {
			quantity = strconv.Itoa(*c.Quantity)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, orDash(c.Name), orDash(c.ChangeType), quantity, stamp(c.EffectiveDate), c.Status, orDash(c.Held))
	}
	_ = tw.Flush()
	lines := strings.Split(strings.TrimSuffix(table.String(), "\n"), "\n")
	fmt.Fprintln(w, lines[0])
	for i, c := range sd.Changes {
		fmt.Fprintln(w, strings.TrimRight(lines[i+1], " "))
		if c.Blocker != "" {
			fmt.Fprintf(w, "     ↳ %s\n", c.Blocker)
		}
	}
}

// Text is WriteText into a string.
func (sd SubscriptionDiagnosis) Text() string {
	var b bytes.Buffer
	sd.WriteText(&b)
	return b.String()
}

// field writes a label and a value that may span lines (a system message does), the later lines under
// the first.
func field(tw io.Writer, label, value string) {
	for i, line := range strings.Split(strings.TrimRight(value, "\n"), "\n") {
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(tw, "%s\t%s\n", label, line)
	}
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

// when writes a time for people, "-" when there is none.
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return mapping.FormatTime(t)
}

// stamp writes a date and time in a table's column, "-" when there is none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}
