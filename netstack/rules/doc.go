// Package rules owns the iptables rule language of nfpipe: it parses rules
// written for iptables and ip6tables into a typed syntax tree, applies them
// with iptables' semantics, checks them the way Linux checks them before it
// loads a table, and renders them back in iptables-save format.
//
// Two input forms are accepted, detected per file:
//
//   - iptables-save / ip6tables-save output: "*table", ":CHAIN POLICY
//     [packets:bytes]", rule lines such as "-A CHAIN rulespec", "COMMIT" and
//     "#" comments. Quoting follows iptables-restore: only double quotes,
//     with backslash escapes inside them.
//   - One iptables command per line, with or without a leading "iptables" or
//     "ip6tables", with shell-style quoting ('...' and "..."), "#" comments
//     and backslash line continuations: -A, -I, -D, -P, -N, -F, -X and -Z,
//     with -t TABLE (filter by default).
//
// Several files and command lists accumulate, in order, into one Ruleset.
// Every error names its place ("nat.rules:3" or "--rule[2]") and the
// offending token; parsing goes on after an error so that one run reports
// all of them. Validate then runs the checks that need the whole rule set:
// which built-in hooks reach each user chain through jumps, where each
// target may be used, jump loops and missing chains.
//
// The package does not import gVisor: mapping a Ruleset onto a stack's
// iptables is the job of its caller. Rules are kept per address family (a
// command that names no family and whose addresses do not imply one applies
// to both), per table, per chain, in order, each with its position and its
// original text.
package rules
