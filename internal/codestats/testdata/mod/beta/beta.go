// Package beta has a doc without sections.
package beta

// Security is the second type of that name.
type Security string

// Shared is declared in alpha and beta.
type Shared struct{}

const tlv = 11542
