package partnercentertest

import (
	"slices"
	"strings"
)

// The simulator's catalog: a few new-commerce license-based items (catalog item id =
// product:sku:availability). Names and ids come from Microsoft's samples, except the add-on, which is
// the simulator's own: Microsoft's samples show no add-on that requires a parent in the new-commerce cart
// flow.
const (
	CatalogBusinessBasic   = "CFQ7TTC0LH18:0001:CFQ7TTC0K971" // Microsoft 365 Business Basic
	CatalogBusinessPremium = "CFQ7TTC0LCHC:0002:CFQ7TTC0N8SS" // Microsoft 365 Business Premium
	CatalogAADPremiumP1    = "CFQ7TTC0LFLS:0002:CFQ7TTC0KDLJ" // Azure Active Directory Premium P1 (Microsoft's create-cart sample)
	CatalogAIBuilder       = "CFQ7TTC0LH0Z:0001:CFQ7TTC0K18P" // AI Builder Capacity add-on, bought stand-alone in Microsoft's sample
	// CatalogExtraStorage is an add-on that needs a parent Business Basic or Business Premium
	// subscription (simulator-only id).
	CatalogExtraStorage = "SIMADDON0001:0001:SIMADDON0001"
)

// offer is a catalog item.
type offer struct {
	id, name string
	// parentProducts, for an add-on, are the product ids a parent subscription may have.
	parentProducts []string
	minQuantity    int
	maxQuantity    int
	// terms maps each term duration to the billing cycles it can be bought with.
	terms map[string][]string
}

// catalog lists the items; it is built on each call so nothing package-level can be changed.
func catalog() []offer {
	monthlyOrAnnual := map[string][]string{"P1M": {"monthly"}, "P1Y": {"monthly", "annual"}, "P3Y": {"monthly", "annual", "triennial"}}
	return []offer{
		{id: CatalogBusinessBasic, name: "Microsoft 365 Business Basic", minQuantity: 1, maxQuantity: 300, terms: monthlyOrAnnual},
		{id: CatalogBusinessPremium, name: "Microsoft 365 Business Premium", minQuantity: 1, maxQuantity: 300, terms: monthlyOrAnnual},
		{id: CatalogAADPremiumP1, name: "Azure Active Directory Premium P1", minQuantity: 1, maxQuantity: 10000, terms: monthlyOrAnnual},
		{id: CatalogAIBuilder, name: "AI Builder Capacity add-on", minQuantity: 1, maxQuantity: 1000,
			terms: map[string][]string{"P1M": {"monthly"}, "P1Y": {"monthly", "annual"}}},
		{id: CatalogExtraStorage, name: "Office 365 Extra File Storage", minQuantity: 1, maxQuantity: 10000, terms: monthlyOrAnnual,
			parentProducts: []string{productOf(CatalogBusinessBasic), productOf(CatalogBusinessPremium)}},
	}
}

// CatalogItems lists the catalog item ids the simulator sells.
func (s *Server) CatalogItems() []string {
	var ids []string
	for _, o := range catalog() {
		ids = append(ids, o.id)
	}
	return ids
}

// catalogItem finds an item by id, case-insensitively.
func catalogItem(id string) (offer, bool) {
	for _, o := range catalog() {
		if strings.EqualFold(o.id, id) {
			return o, true
		}
	}
	return offer{}, false
}

// hasAddOns reports whether some catalog add-on can attach to a subscription of this offer.
func hasAddOns(offerID string) bool {
	for _, o := range catalog() {
		if slices.Contains(o.parentProducts, productOf(offerID)) {
			return true
		}
	}
	return false
}

// productOf is the product id part of a catalog item id.
func productOf(catalogItemID string) string {
	p, _, _ := strings.Cut(catalogItemID, ":")
	return p
}
