// Package suggest finds the name a user probably meant, for "did you mean"
// hints in error messages.
package suggest

import (
	"fmt"
	"slices"
)

// DidYouMean returns ` (did you mean "x"?)` for the candidate nearest to
// word within edit distance 2 (and closer than the word's own length), or ""
// if none is that close. Ties go to the candidate first in sorted order.
func DidYouMean(word string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range slices.Sorted(slices.Values(candidates)) {
		if d := Distance(word, c); d < bestDist && d < max(len(word), len(c)) {
			best, bestDist = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// Distance returns the Levenshtein edit distance between a and b.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
