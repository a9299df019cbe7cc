package alpha

// Security is one of two types of that name.
type Security int

// Shared is declared in alpha and beta.
type Shared struct{}

// Formats holds the TLV number.
var Formats = []int{0, 11542}

// Long has six parameters and more than five lines.
func Long(a, b, c, d, e, f int) int {
	x := a + b
	x += c
	x += d
	x += e
	x += f
	return x
}

// Short is neither long nor wide.
func Short() int { return 1 }
