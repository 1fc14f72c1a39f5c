package vnf

import (
	"fmt"
	"os"
	"sync"

	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/netstack/rules"
)

// ruleState holds the rules installed in a function's stack and their
// counters, and reloads them.
type ruleState struct {
	applyMu  sync.Mutex // one reload at a time (SIGHUP, control socket)
	mu       sync.Mutex
	counters []*netstack.ChainCounters
}

// loadRules reads cfg's rule files and command-line rules into one rule set.
func loadRules(cfg *Config) (*rules.Ruleset, error) {
	rs := &rules.Ruleset{}
	var errs rules.ErrorList
	add := func(err error) {
		if el, ok := err.(rules.ErrorList); ok {
			errs = append(errs, el...)
		} else if err != nil {
			errs = append(errs, &rules.Error{Pos: rules.Pos{Source: "rules"}, Msg: err.Error()})
		}
	}
	if len(cfg.PresetRules) > 0 {
		add(rs.AddCommands(cfg.Kind+" preset", cfg.PresetRules, rules.ParseOptions{Family: rules.IPv4}))
	}
	for _, path := range cfg.RuleFiles {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("--rules: %w", err)
		}
		add(rs.AddFile(path, b, rules.ParseOptions{Family: rules.IPv4}))
	}
	if len(cfg.Rules) > 0 {
		add(rs.AddCommands("--rule", cfg.Rules, rules.ParseOptions{Family: rules.IPv4}))
	}
	// Validate reports the parse errors of every Add and its own checks,
	// all at once, in input order.
	if err := rs.Validate(); err != nil {
		return nil, err
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return rs, nil
}

// apply loads and installs cfg's rules; on error the rules in force stay.
func (st *ruleState) apply(cfg *Config, stk *netstack.Stack) error {
	if len(cfg.RuleFiles) == 0 && len(cfg.Rules) == 0 && len(cfg.PresetRules) == 0 {
		return nil
	}
	st.applyMu.Lock()
	defer st.applyMu.Unlock()
	rs, err := loadRules(cfg)
	if err != nil {
		return err
	}
	counters, err := stk.ApplyRules(rs)
	if err != nil {
		return err
	}
	st.mu.Lock()
	st.counters = counters
	st.mu.Unlock()
	return nil
}

// RuleStats is one chain's counters, for --stats.
type RuleStats struct {
	Family  string        `json:"family"`
	Table   string        `json:"table"`
	Chain   string        `json:"chain"`
	Policy  string        `json:"policy,omitempty"`
	Packets uint64        `json:"policy_packets"`
	Bytes   uint64        `json:"policy_bytes"`
	Rules   []RuleCounter `json:"rules"`
}

// RuleCounter is one rule's counters.
type RuleCounter struct {
	Rule    string `json:"rule"`
	Target  string `json:"target"`
	Packets uint64 `json:"packets"`
	Bytes   uint64 `json:"bytes"`
}

func (st *ruleState) snapshot() []RuleStats {
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []RuleStats
	for _, cc := range st.counters {
		rsx := RuleStats{Family: cc.Family.String(), Table: cc.Table, Chain: cc.Chain.Name}
		if cc.Policy != nil {
			rsx.Policy = cc.Chain.Policy.Name()
			rsx.Packets, rsx.Bytes = cc.Policy.Packets.Load(), cc.Policy.Bytes.Load()
		}
		for i, r := range cc.Chain.Rules {
			target := ""
			if r.Target != nil {
				target = r.Target.Name()
			}
			rsx.Rules = append(rsx.Rules, RuleCounter{Rule: r.Spec(), Target: target, Packets: cc.Rules[i].Packets.Load(), Bytes: cc.Rules[i].Bytes.Load()})
		}
		out = append(out, rsx)
	}
	return out
}
