package retention

import (
	"fmt"
	"strconv"
	"strings"
)

// DefaultDays is the deployment's retention when not configured: 30 days,
// as the hosted products keep audit logs by default.
const DefaultDays = 30

// The periods an organization's retention may be set to, as WorkOS allows
// them: 30 to 330 days by 30 (1 to 11 months), and 365 to 3650 days by 365
// (1 to 10 years).
const (
	monthDays = 30
	maxMonths = 11
	yearDays  = 365
	maxYears  = 10
)

// ValidDays reports whether an organization's retention may be set to days.
func ValidDays(days int) bool {
	switch {
	case days >= monthDays && days <= maxMonths*monthDays:
		return days%monthDays == 0
	case days >= yearDays && days <= maxYears*yearDays:
		return days%yearDays == 0
	}
	return false
}

// ParsePeriod parses the newer WorkOS SDKs' retention_period: "1_MONTH",
// "2_MONTHS" … "11_MONTHS" (30 days each) and "1_YEAR", "2_YEARS" …
// "10_YEARS" (365 days each).
func ParsePeriod(s string) (days int, ok bool) {
	num, unit, found := strings.Cut(s, "_")
	if !found {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 1 || strconv.Itoa(n) != num {
		return 0, false
	}
	switch {
	case unit == "MONTH" && n == 1, unit == "MONTHS" && n > 1 && n <= maxMonths:
		return n * monthDays, true
	case unit == "YEAR" && n == 1, unit == "YEARS" && n > 1 && n <= maxYears:
		return n * yearDays, true
	}
	return 0, false
}

// FormatPeriod is the retention_period naming days, or "" when days is not
// a valid period.
func FormatPeriod(days int) string {
	if !ValidDays(days) {
		return ""
	}
	n, unit := days/monthDays, "MONTH"
	if days >= yearDays {
		n, unit = days/yearDays, "YEAR"
	}
	if n > 1 {
		unit += "S"
	}
	return fmt.Sprintf("%d_%s", n, unit)
}
