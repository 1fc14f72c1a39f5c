package rules

import (
	"fmt"
	"strings"
)

// splitRestore splits one iptables-save rule line into words the way
// iptables-restore does: whitespace separates words; a double quote opens a
// quoted part in which a backslash escapes the next character; the closing
// quote ends the word. Single quotes are not quotes for iptables-restore;
// a word that starts with one is refused rather than silently kept with its
// quote characters.
func splitRestore(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
		quoted bool
	)
	end := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		if quoted {
			switch c {
			case '\\':
				if i+1 < len(line) {
					i++
					cur.WriteByte(line[i])
				}
			case '"':
				quoted = false
				end()
			default:
				cur.WriteByte(c)
			}
			continue
		}
		switch c {
		case '"':
			quoted, inWord = true, true
		case ' ', '\t', '\n', '\r', '\v', '\f':
			end()
		case '\'':
			if !inWord {
				return nil, fmt.Errorf("single quotes do not quote in iptables-save format: use double quotes")
			}
			cur.WriteByte(c)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if quoted {
		return nil, fmt.Errorf("unterminated double quote")
	}
	end()
	return words, nil
}

// splitShell splits one command line into words like a POSIX shell would,
// for the subset that makes sense in an iptables command: '...' and "..."
// quoting, backslash escapes and "#" comments. Expansions ($VAR, `cmd`) and
// operators (; | & < > ( )) are refused: nothing here runs a shell, so they
// would silently mean something else.
func splitShell(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	end := func() {
		if inWord {
			words = append(words, cur.String())
		}
		cur.Reset()
		inWord = false
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch c {
		case ' ', '\t', '\n', '\r', '\v', '\f':
			end()
		case '#':
			if !inWord {
				return words, nil
			}
			cur.WriteByte(c)
		case '\\':
			if i+1 >= len(line) {
				return nil, fmt.Errorf("backslash at the end of the command")
			}
			i++
			if line[i] != '\n' {
				cur.WriteByte(line[i])
				inWord = true
			}
		case '\'':
			inWord = true
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			i += 1 + j
		case '"':
			inWord = true
			i++
			for ; ; i++ {
				if i >= len(line) {
					return nil, fmt.Errorf("unterminated double quote")
				}
				c := line[i]
				if c == '"' {
					break
				}
				if c == '\\' && i+1 < len(line) && strings.IndexByte("\\\"$`\n", line[i+1]) >= 0 {
					i++
					if line[i] != '\n' {
						cur.WriteByte(line[i])
					}
					continue
				}
				if err := checkExpansion(line, i); err != nil {
					return nil, err
				}
				cur.WriteByte(c)
			}
		case ';', '|', '&', '<', '>', '(', ')':
			return nil, fmt.Errorf("shell operator %q is not supported: write one iptables command per line", string(c))
		default:
			if err := checkExpansion(line, i); err != nil {
				return nil, err
			}
			cur.WriteByte(c)
			inWord = true
		}
	}
	end()
	return words, nil
}

// checkExpansion refuses a shell expansion starting at line[i].
func checkExpansion(line string, i int) error {
	switch line[i] {
	case '`':
		return fmt.Errorf("command substitution (`...`) is not supported")
	case '$':
		if i+1 < len(line) {
			n := line[i+1]
			if n == '{' || n == '(' || n == '_' || n >= 'a' && n <= 'z' || n >= 'A' && n <= 'Z' || n >= '0' && n <= '9' {
				rest := line[i:]
				if k := strings.IndexAny(rest, " \t\"'"); k > 0 {
					rest = rest[:k]
				}
				return fmt.Errorf("shell expansion %q is not supported: write the value itself", rest)
			}
		}
	}
	return nil
}

// saveQuote returns s as iptables-save writes a string argument: bare when
// it is made of letters, digits, '_' and '-', otherwise double-quoted with
// '"', '\' and '\” escaped by a backslash.
func saveQuote(s string) string {
	bare := s != ""
	for i := 0; i < len(s) && bare; i++ {
		c := s[i]
		bare = c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	if bare {
		return s
	}
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	b.WriteByte('"')
	return b.String()
}
