// Package alpha is a fixture for codestats' test.
//
// # Usage
//
//	alpha.Long(1, 2, 3, 4, 5, 6)
//
// # Design
//
// It links to [Long] and [Security], and to [Missing], which does not
// exist.
package alpha
