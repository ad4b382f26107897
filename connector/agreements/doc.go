// Package agreements drives each customer's Microsoft Customer Agreement: it requests acceptance links
// through Partner Center's enhanced attestation flow, notices acceptance made elsewhere (the Microsoft 365
// admin center), finalizes the agreement, and records how and when the customer accepted and when the
// connector confirmed it. The Attestation Check job polls the agreements waiting on the customer; an
// agreement template's Create Agreements button creates the Pending agreements its customers lack.
package agreements
