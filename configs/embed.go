// Package configs holds nfpipe's example configurations. The quickstart
// chain is built into the binary: `nfpipe chain check` (and `chain up`)
// with no file use it.
package configs

import _ "embed" // for the quickstart chain

// Quickstart is configs/quickstart.yaml.
//
//go:embed quickstart.yaml
var Quickstart []byte
