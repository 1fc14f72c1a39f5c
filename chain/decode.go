package chain

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/nfpipe/nfpipe/internal/suggest"
	"github.com/nfpipe/nfpipe/netstack"
	"github.com/nfpipe/nfpipe/netstack/frame"
	"github.com/nfpipe/nfpipe/vnf"
)

// Options are what decoding and checking a spec need from the rest of
// nfpipe.
type Options struct {
	// Registry holds the kinds a function may be; required.
	Registry *vnf.Registry
	// Flags returns a fresh flag set of `nfpipe vnf KIND`. A function's
	// keys other than the chain's own (kind, interfaces, routes, ...) are
	// these flags — run, serve and expect for a host, timeout, stats and
	// the like for any kind — so a kind's new flag is a spec key at once.
	// Nil allows no such keys.
	Flags func(kind string) *pflag.FlagSet
	// Build parses args (the flags after `nfpipe vnf KIND`) the way
	// `nfpipe vnf KIND` does. Check uses it to run each function's kind
	// parameters through the kind's own validation, and to parse every
	// generated argv, so that the plan and the real flags cannot drift
	// apart. Nil skips both.
	Build func(kind string, args []string) (*vnf.Config, error)
	// Dir is the directory relative paths in the spec start from; empty
	// means the directory of the spec file.
	Dir string
	// RuntimeRoot holds every chain's runtime directory; empty means
	// DefaultRuntimeRoot().
	RuntimeRoot string
	// ReadFile and Stat default to os.ReadFile and os.Stat.
	ReadFile func(string) ([]byte, error)
	Stat     func(string) (os.FileInfo, error)
}

// Load reads and decodes the chain spec in the file at path.
func Load(path string, opts Options) (*Spec, error) {
	b, err := readFile(opts, path)
	if err != nil {
		return nil, ErrorList{{Pos: Pos{File: path}, Msg: cleanIOError(err)}}
	}
	return Decode(path, b, opts)
}

func readFile(opts Options, path string) ([]byte, error) {
	if opts.ReadFile != nil {
		return opts.ReadFile(path)
	}
	return os.ReadFile(path)
}

func stat(opts Options, path string) (os.FileInfo, error) {
	if opts.Stat != nil {
		return opts.Stat(path)
	}
	return os.Stat(path)
}

// cleanIOError drops the path from an *os.PathError: the error's position
// already names the file.
func cleanIOError(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// Decode decodes and checks a chain spec. file names it in errors and, by
// default, relative paths start from its directory. Every problem is
// reported, each with its place: the error is an ErrorList.
func Decode(file string, data []byte, opts Options) (*Spec, error) {
	if opts.Registry == nil {
		return nil, fmt.Errorf("chain: Options.Registry is required")
	}
	d := &decoder{opts: opts, e: &errs{}, file: file, dir: opts.Dir}
	if d.dir == "" {
		d.dir = filepath.Dir(file)
	}
	root := d.parse(data)
	if root == nil {
		return nil, d.e.sorted()
	}
	s := d.spec(root)
	s.RuntimeDir = d.runDir
	d.check(s)
	if err := d.e.sorted(); err != nil {
		return nil, err
	}
	return s, nil
}

// decoder walks a spec's YAML nodes, collecting errors as it goes.
type decoder struct {
	opts Options
	e    *errs
	// file is the file being read, dir the directory its relative paths
	// start from; at is the place in the spec that named the file (zero
	// for the spec itself).
	file, dir string
	at        Pos

	// runDir is the chain's runtime directory.
	runDir   string
	defaults struct {
		restart  RestartPolicy
		env      map[string]string
		logLevel string
	}
	// pipelineNodes are the pipeline's items; pipelineFiles the functions
	// read from function files it names, by item.
	pipelineNodes []*yaml.Node
	pipelineFiles map[*yaml.Node]*Function
	// flagSets caches each kind's flags.
	flagSets map[string]*pflag.FlagSet
}

// in returns a decoder reporting errors in fn's file.
func (d *decoder) in(fn *Function) *decoder {
	c := *d
	c.file, c.dir, c.at = fn.file, fn.dir, fn.at
	return &c
}

func (d *decoder) errf(n *yaml.Node, path, format string, args ...any) {
	p := Pos{File: d.file}
	if n != nil {
		p.Line, p.Col = n.Line, n.Column
	}
	d.e.add(&Error{Pos: p, Path: path, Msg: fmt.Sprintf(format, args...), at: d.at})
}

// place returns "file:line:col" of n, for messages that point elsewhere.
func (d *decoder) place(n *yaml.Node) string {
	return Pos{File: d.file, Line: n.Line, Col: n.Column}.String()
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse parses one YAML document and returns its top node, or nil.
func (d *decoder) parse(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if err == io.EOF {
			d.errf(nil, "", "empty chain spec: want at least name and functions")
			return nil
		}
		d.yamlError(err)
		return nil
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		d.errf(&more, "", "a spec is one YAML document: remove what follows ---")
	} else if err != io.EOF {
		d.yamlError(err)
	}
	if len(doc.Content) == 0 {
		d.errf(nil, "", "empty chain spec: want at least name and functions")
		return nil
	}
	return deref(doc.Content[0])
}

func (d *decoder) yamlError(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			d.yamlMsg(m)
		}
		return
	}
	d.yamlMsg(err.Error())
}

func (d *decoder) yamlMsg(msg string) {
	p := Pos{File: d.file}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		p.Line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	d.e.add(&Error{Pos: p, Msg: "bad YAML: " + strings.TrimPrefix(msg, "yaml: "), at: d.at})
}

// deref follows aliases (*name) to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 64; i++ {
		n = n.Alias
	}
	if n == nil || n.Kind == yaml.AliasNode {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}
	}
	return n
}

// pair is one key of a mapping and its value.
type pair struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
}

// pairs returns the keys of a mapping in order, merging `<<: *anchor`
// mappings in (keys written here win), and reports duplicate keys.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	return d.pairsDepth(n, path, 0)
}

func (d *decoder) pairsDepth(n *yaml.Node, path string, depth int) []pair {
	var out, merged []pair
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), deref(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			d.errf(k, path, "a key must be a plain name, not a %s", kindName(k))
			continue
		}
		if k.Tag == "!!merge" {
			for _, m := range mergeSources(v) {
				if m.Kind != yaml.MappingNode || depth > 8 {
					d.errf(v, path, "<< merges a mapping (<<: *name), not a %s", kindName(m))
					continue
				}
				merged = append(merged, d.pairsDepth(m, path, depth+1)...)
			}
			continue
		}
		if j, dup := seen[k.Value]; dup {
			d.errf(k, joinPath(path, k.Value), "duplicate key (first at %s)", d.place(out[j].keyNode))
			continue
		}
		seen[k.Value] = len(out)
		out = append(out, pair{key: k.Value, keyNode: k, val: v})
	}
	for _, p := range merged {
		if _, ok := seen[p.key]; !ok {
			seen[p.key] = len(out)
			out = append(out, p)
		}
	}
	return out
}

func mergeSources(v *yaml.Node) []*yaml.Node {
	if v.Kind == yaml.SequenceNode {
		var out []*yaml.Node
		for _, c := range v.Content {
			out = append(out, deref(c))
		}
		return out
	}
	return []*yaml.Node{v}
}

// fields returns a mapping's keys by name, reporting keys not in known
// with the nearest known name. other, when set, may explain a key that is
// not known here (a setting of another kind).
func (d *decoder) fields(n *yaml.Node, path string, known []string, other func(string) string) map[string]pair {
	m := map[string]pair{}
	for _, p := range d.pairs(n, path) {
		if !slices.Contains(known, p.key) {
			msg := ""
			if other != nil {
				msg = other(p.key)
			}
			if msg == "" {
				msg = fmt.Sprintf("unknown key %q", p.key)
				if hint := suggest.DidYouMean(p.key, known); hint != "" {
					msg += hint
				} else {
					msg += fmt.Sprintf(" (known: %s)", strings.Join(slices.Sorted(slices.Values(known)), ", "))
				}
			}
			d.errf(p.keyNode, joinPath(path, p.key), "%s", msg)
			continue
		}
		m[p.key] = p
	}
	return m
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return "scalar"
	}
	return "node"
}

func isNull(n *yaml.Node) bool { return n.Kind == yaml.ScalarNode && n.Tag == "!!null" }

// mapping reports whether n is a mapping, and says so when it is not.
func (d *decoder) mapping(n *yaml.Node, path, what string) bool {
	if n.Kind == yaml.MappingNode {
		return true
	}
	d.errf(n, path, "want %s, got a %s", what, kindName(n))
	return false
}

// onOff reads the on/off key of m ("on", "off", or "" when it is absent
// or wrong, the error recorded).
func (d *decoder) onOff(m map[string]pair, path, key string) string {
	p, ok := m[key]
	if !ok {
		return ""
	}
	v, ok := d.scalar(p.val, path+"."+key, "on or off")
	if !ok {
		return ""
	}
	switch v {
	case "on", "true":
		return "on"
	case "off", "false":
		return "off"
	}
	d.errf(p.val, path+"."+key, "unknown %s %q (want on or off)", key, v)
	return ""
}

// scalar returns n's value when it is a scalar and not null or empty.
func (d *decoder) scalar(n *yaml.Node, path, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errf(n, path, "want %s, got a %s", what, kindName(n))
		return "", false
	}
	if isNull(n) || n.Value == "" {
		d.errf(n, path, "want %s, got nothing", what)
		return "", false
	}
	return n.Value, true
}

// list returns the items of a list of scalars; a lone scalar is a list of
// one and null an empty list.
func (d *decoder) list(n *yaml.Node, path, what string) []item {
	switch {
	case isNull(n):
		return nil
	case n.Kind == yaml.ScalarNode:
		if n.Value == "" {
			d.errf(n, path, "want %s, got nothing", what)
			return nil
		}
		return []item{{n.Value, n, path}}
	case n.Kind != yaml.SequenceNode:
		d.errf(n, path, "want a list of %s, got a %s", what, kindName(n))
		return nil
	}
	var out []item
	for i, c := range n.Content {
		c = deref(c)
		if v, ok := d.scalar(c, index(path, i), what); ok {
			out = append(out, item{v, c, index(path, i)})
		}
	}
	return out
}

// abs resolves a path written in the current file.
func (d *decoder) abs(p string) string {
	if !filepath.IsAbs(p) {
		p = filepath.Join(d.dir, p)
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// shown returns how errors name a path written in the current file: as
// the user would type it where nfpipe runs.
func (d *decoder) shown(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(d.dir, p)
}

// inRun resolves a path relative to the chain's runtime directory.
func (d *decoder) inRun(sub, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(d.runDir, sub, p)
}

var (
	chainNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
	ifNameRE    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$`)
	linkNameRE  = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const (
	nameRule   = "lower-case letters, digits, '-' and '_', at most 32, starting with a letter or digit"
	ifNameRule = "letters, digits, '-' and '_', at most 15, starting with a letter or digit"
)

var topKeys = []string{"name", "description", "defaults", "functions", "links", "pipeline"}

func (d *decoder) spec(root *yaml.Node) *Spec {
	s := &Spec{File: d.file}
	d.defaults.restart = defaultRestart()
	d.runDir = filepath.Join(d.runtimeRoot(), "chain")
	if !d.mapping(root, "", "a chain spec (name, functions, links, ...)") {
		return s
	}
	if settingsFile(root) {
		d.errf(root, "", "this is a settings file for `nfpipe vnf KIND --config FILE` (its keys are flags), not a chain spec: a chain spec has name and functions or pipeline (see docs/chain.md)")
		return s
	}
	m := d.fields(root, "", topKeys, nil)
	if p, ok := m["name"]; ok {
		if v, ok := d.scalar(p.val, "name", "the chain's name"); ok {
			if chainNameRE.MatchString(v) {
				s.Name = v
				d.runDir = filepath.Join(d.runtimeRoot(), v)
			} else {
				d.errf(p.val, "name", "bad chain name %q: %s", v, nameRule)
			}
		}
	} else {
		d.errf(root, "", "the chain has no name: add name: NAME")
	}
	if p, ok := m["description"]; ok {
		s.Description, _ = d.scalar(p.val, "description", "a one-line description")
	}
	if p, ok := m["defaults"]; ok {
		d.decodeDefaults(p.val)
	}
	if p, ok := m["functions"]; ok {
		d.functions(s, p.val)
	}
	if p, ok := m["pipeline"]; ok {
		d.pipeline(s, p.val)
	}
	if p, ok := m["links"]; ok {
		d.links(s, p.val)
	}
	_, hasFns := m["functions"]
	_, hasPipe := m["pipeline"]
	if !hasFns && !hasPipe {
		d.errf(root, "", "the chain has no functions: add functions: or pipeline:")
	}
	return s
}

// settingsFile reports whether a top-level mapping is a function's
// settings file rather than a chain spec: it has an "if" key and none of
// a chain's.
func settingsFile(root *yaml.Node) bool {
	hasIf := false
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "functions", "pipeline", "links":
			return false
		case "if":
			hasIf = true
		}
	}
	return hasIf
}

// IsSpec reports whether data looks like a chain spec (a YAML mapping with
// functions or pipeline) rather than a function's settings file.
func IsSpec(data []byte) bool {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 {
		return false
	}
	root := deref(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if k := root.Content[i].Value; k == "functions" || k == "pipeline" {
			return true
		}
	}
	return false
}

func (d *decoder) runtimeRoot() string {
	if d.opts.RuntimeRoot != "" {
		return d.opts.RuntimeRoot
	}
	return DefaultRuntimeRoot()
}

func (d *decoder) decodeDefaults(n *yaml.Node) {
	if isNull(n) || !d.mapping(n, "defaults", "default settings (restart, env, log-level)") {
		return
	}
	m := d.fields(n, "defaults", []string{"restart", "env", "log-level"}, nil)
	if p, ok := m["restart"]; ok {
		d.defaults.restart = d.restart(p.val, "defaults.restart", d.defaults.restart)
	}
	if p, ok := m["env"]; ok {
		d.defaults.env = d.env(p.val, "defaults.env", nil)
	}
	if p, ok := m["log-level"]; ok {
		d.defaults.logLevel = d.logLevel(p.val, "defaults.log-level")
	}
}

var restartPolicies = []string{RestartNever, RestartOnFailure, RestartAlways}

// restart decodes a restart policy: a policy name, or a mapping that
// overrides base field by field.
func (d *decoder) restart(n *yaml.Node, path string, base RestartPolicy) RestartPolicy {
	r := base
	policy := func(v *yaml.Node, path string) {
		s, ok := d.scalar(v, path, "never, on-failure or always")
		if !ok {
			return
		}
		if !slices.Contains(restartPolicies, s) {
			d.errf(v, path, "unknown restart policy %q%s (want never, on-failure or always)", s, suggest.DidYouMean(s, restartPolicies))
			return
		}
		r.Policy = s
	}
	if n.Kind == yaml.ScalarNode {
		policy(n, path)
		return r
	}
	if !d.mapping(n, path, "a restart policy (never, on-failure, always, or {policy: ..., backoff: ...})") {
		return r
	}
	m := d.fields(n, path, []string{"policy", "backoff", "max-backoff", "max-restarts", "window"}, nil)
	if p, ok := m["policy"]; ok {
		policy(p.val, path+".policy")
	}
	dur := func(key string, dst *time.Duration) {
		p, ok := m[key]
		if !ok {
			return
		}
		v, ok := d.scalar(p.val, path+"."+key, "a duration such as 500ms")
		if !ok {
			return
		}
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 {
			d.errf(p.val, path+"."+key, "bad duration %q: want a positive duration such as 500ms or 10s", v)
			return
		}
		*dst = t
	}
	dur("backoff", &r.Backoff)
	dur("max-backoff", &r.MaxBackoff)
	dur("window", &r.Window)
	if p, ok := m["max-restarts"]; ok {
		if v, ok := d.scalar(p.val, path+".max-restarts", "a number"); ok {
			k, err := strconv.Atoi(v)
			if err != nil || k < 0 {
				d.errf(p.val, path+".max-restarts", "bad count %q: want 0 (no limit) or more", v)
			} else {
				r.MaxRestarts = k
			}
		}
	}
	if r.MaxBackoff < r.Backoff {
		d.errf(n, path, "max-backoff %s is shorter than backoff %s", r.MaxBackoff, r.Backoff)
	}
	return r
}

// env decodes environment variables over base.
func (d *decoder) env(n *yaml.Node, path string, base map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	if isNull(n) || !d.mapping(n, path, "environment variables (NAME: value)") {
		return out
	}
	for _, p := range d.pairs(n, path) {
		kp := joinPath(path, p.key)
		switch {
		case !envNameRE.MatchString(p.key):
			d.errf(p.keyNode, kp, "bad variable name %q", p.key)
			continue
		case strings.HasPrefix(p.key, "NFPIPE_"):
			d.errf(p.keyNode, kp, "NFPIPE_* variables would configure the function behind the plan's back: write the setting in the spec (log-level, a kind parameter)")
			continue
		case p.val.Kind != yaml.ScalarNode:
			d.errf(p.val, kp, "want a value, got a %s", kindName(p.val))
			continue
		}
		out[p.key] = p.val.Value
		if isNull(p.val) {
			out[p.key] = ""
		}
	}
	return out
}

var logLevels = []string{"debug", "info", "warn", "error"}

func (d *decoder) logLevel(n *yaml.Node, path string) string {
	v, ok := d.scalar(n, path, "debug, info, warn or error")
	if !ok {
		return ""
	}
	if !slices.Contains(logLevels, v) {
		d.errf(n, path, "unknown log level %q%s (want debug, info, warn or error)", v, suggest.DidYouMean(v, logLevels))
		return ""
	}
	return v
}

func (d *decoder) functions(s *Spec, n *yaml.Node) {
	if isNull(n) || !d.mapping(n, "functions", "functions by name (NAME: {kind: ..., interfaces: ...})") {
		return
	}
	for _, p := range d.pairs(n, "functions") {
		path := joinPath("functions", p.key)
		if !chainNameRE.MatchString(p.key) {
			d.errf(p.keyNode, path, "bad function name %q: %s", p.key, nameRule)
			continue
		}
		if fn := d.function(p.key, p.val, path, p.keyNode); fn != nil {
			s.Functions = append(s.Functions, fn)
		}
	}
}

// functionKeys are the chain's own keys of a function; its other keys are
// flags of `nfpipe vnf KIND`.
var functionKeys = []string{"kind", "interfaces", "routes", "gateways", "neighbors", "rules", "rule-files", "restart", "env", "log-level"}

// managedFlags are the flags of `nfpipe vnf KIND` the plan writes from the
// chain's own keys; they are not kind parameters.
var managedFlags = []string{"name", "if", "ip", "route", "gw", "neigh", "capture", "rules", "rule", "config", "log-level", "control", "help"}

// function decodes a function: a mapping, or the name of a function file
// holding one.
func (d *decoder) function(name string, n *yaml.Node, path string, keyNode *yaml.Node) *Function {
	fn := &Function{
		Name: name, path: path, node: n, file: d.file, dir: d.dir, at: d.at,
		Restart: d.defaults.restart, LogLevel: d.defaults.logLevel,
		Env: d.env(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null"}, "", d.defaults.env), keys: map[string]*yaml.Node{},
	}
	if isNull(n) {
		d.errf(keyNode, path, "empty function: give at least kind and interfaces")
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return d.functionBody(fn)
	}
	rel := n.Value
	if ext := filepath.Ext(rel); ext != ".yaml" && ext != ".yml" {
		d.errf(n, path, "want a function (a mapping) or a function file (.yaml), got %q", rel)
		return nil
	}
	b, err := readFile(d.opts, d.abs(rel))
	if err != nil {
		d.errf(n, path, "function file %s: %s", rel, cleanIOError(err))
		return nil
	}
	fd := *d
	fd.file, fd.dir = d.shown(rel), filepath.Dir(d.abs(rel))
	if fd.at == (Pos{}) {
		fd.at = Pos{File: d.file, Line: n.Line, Col: n.Column}
	}
	root := fd.parse(b)
	if root == nil {
		return nil
	}
	fn.file, fn.dir, fn.at, fn.node = fd.file, fd.dir, fd.at, root
	return fd.functionBody(fn)
}

// paramDef is a kind parameter: a flag of `nfpipe vnf KIND`.
type paramDef struct {
	name string
	list bool
	typ  string
}

func (d *decoder) flags(kind string) *pflag.FlagSet {
	if d.opts.Flags == nil {
		return nil
	}
	if d.flagSets == nil {
		d.flagSets = map[string]*pflag.FlagSet{}
	}
	fs, ok := d.flagSets[kind]
	if !ok {
		fs = d.opts.Flags(kind)
		d.flagSets[kind] = fs
	}
	return fs
}

// kindParams returns the parameters of kind, or of every kind when kind is
// nil (unknown), so that its keys are not all reported too.
func (d *decoder) kindParams(kind *vnf.Kind) []paramDef {
	var kinds []*vnf.Kind
	if kind != nil {
		kinds = []*vnf.Kind{kind}
	} else {
		kinds = d.opts.Registry.Kinds()
	}
	var out []paramDef
	seen := map[string]bool{}
	for _, k := range kinds {
		fs := d.flags(k.Name)
		if fs == nil {
			continue
		}
		fs.VisitAll(func(f *pflag.Flag) {
			if slices.Contains(managedFlags, f.Name) || seen[f.Name] {
				return
			}
			seen[f.Name] = true
			t := f.Value.Type()
			out = append(out, paramDef{name: f.Name, typ: t, list: strings.HasSuffix(t, "Array") || strings.HasSuffix(t, "Slice")})
		})
	}
	return out
}

// otherKind explains a key that is a parameter of other kinds only.
func (d *decoder) otherKind(kind *vnf.Kind, key string) string {
	if kind == nil {
		return ""
	}
	var owners []string
	for _, k := range d.opts.Registry.Kinds() {
		if k.Name == kind.Name {
			continue
		}
		for _, p := range d.kindParams(k) {
			if p.name == key {
				owners = append(owners, k.Name)
			}
		}
	}
	if len(owners) == 0 {
		return ""
	}
	return fmt.Sprintf("%q is a setting of %s, not of %s", key, strings.Join(owners, " and "), kind.Name)
}

func (d *decoder) functionBody(fn *Function) *Function {
	n, path := fn.node, fn.path
	if !d.mapping(n, path, "a function (kind, interfaces, ...)") {
		return nil
	}
	// The kind decides which other keys are valid: read it first.
	var kind *vnf.Kind
	for _, p := range d.pairs(n, path) {
		if p.key != "kind" {
			continue
		}
		if v, ok := d.scalar(p.val, path+".kind", "a kind"); ok {
			fn.Kind = v
			k, err := d.opts.Registry.Lookup(v)
			if err != nil {
				d.errf(p.val, path+".kind", "%v", err)
			}
			kind = k
		}
	}
	params := d.kindParams(kind)
	known := slices.Clone(functionKeys)
	for _, p := range params {
		known = append(known, p.name)
	}
	m := d.fields(n, path, known, func(key string) string { return d.otherKind(kind, key) })
	if _, ok := m["kind"]; !ok {
		d.errf(n, path, "no kind: add kind: %s", strings.Join(d.opts.Registry.Names(), "|"))
	}
	for k, p := range m {
		fn.keys[k] = p.keyNode
	}
	if p, ok := m["interfaces"]; ok {
		d.interfaces(fn, p.val, path+".interfaces")
	} else {
		d.errf(n, path, "no interfaces: add interfaces: {eth0: 192.0.2.1/24}")
	}
	if p, ok := m["routes"]; ok {
		for _, it := range d.list(p.val, path+".routes", "routes such as '10.0.0.0/8 via 192.0.2.1'") {
			r, err := netstack.ParseRoute(it.val)
			if err != nil {
				d.errf(it.node, it.path, "%v", err)
				continue
			}
			fn.Routes = append(fn.Routes, r)
			fn.routeAt = append(fn.routeAt, it)
		}
	}
	if p, ok := m["gateways"]; ok {
		for _, it := range d.list(p.val, path+".gateways", "gateway addresses") {
			a, err := netip.ParseAddr(it.val)
			if err != nil || a.Zone() != "" {
				d.errf(it.node, it.path, "bad gateway %q: want an IPv4 or IPv6 address", it.val)
				continue
			}
			fn.Gateways = append(fn.Gateways, a)
			fn.gwAt = append(fn.gwAt, it)
		}
	}
	if p, ok := m["neighbors"]; ok {
		for _, it := range d.list(p.val, path+".neighbors", "neighbours such as '192.0.2.1 lladdr 02:00:00:00:00:01'") {
			nb, err := netstack.ParseNeighbor(it.val)
			if err != nil {
				d.errf(it.node, it.path, "%v", err)
				continue
			}
			fn.Neighbors = append(fn.Neighbors, nb)
			fn.neighAt = append(fn.neighAt, it)
		}
	}
	if p, ok := m["rules"]; ok {
		for _, it := range d.list(p.val, path+".rules", "iptables commands such as '-A FORWARD -p tcp --dport 23 -j DROP'") {
			if looksLikeFile(it.val) {
				d.errf(it.node, it.path, "%q is not an iptables command; for a rule file write rule-files: [%s]", it.val, it.val)
				continue
			}
			fn.Rules = append(fn.Rules, it.val)
			fn.ruleAt = append(fn.ruleAt, it)
		}
	}
	if p, ok := m["rule-files"]; ok {
		for _, it := range d.list(p.val, path+".rule-files", "rule file paths") {
			if bad := badPathChars(it.val); bad != "" {
				d.errf(it.node, it.path, "%s", bad)
				continue
			}
			fn.RuleFiles = append(fn.RuleFiles, d.abs(it.val))
			fn.ruleFileNames = append(fn.ruleFileNames, d.shown(it.val))
			fn.fileAt = append(fn.fileAt, it)
		}
	}
	if p, ok := m["restart"]; ok {
		fn.Restart = d.restart(p.val, path+".restart", fn.Restart)
	}
	if p, ok := m["env"]; ok {
		fn.Env = d.env(p.val, path+".env", fn.Env)
	}
	if p, ok := m["log-level"]; ok {
		fn.LogLevel = d.logLevel(p.val, path+".log-level")
	}
	// Kind parameters, in the order written.
	for _, p := range d.pairs(n, path) {
		i := slices.IndexFunc(params, func(pd paramDef) bool { return pd.name == p.key })
		if i < 0 || kind == nil {
			continue
		}
		d.param(fn, kind, params[i], p)
	}
	return fn
}

// looksLikeFile reports whether a rules item is a file name rather than a
// command: one word, not an option, with a dot or a slash.
func looksLikeFile(s string) bool {
	return !strings.HasPrefix(s, "-") && !strings.ContainsAny(s, " \t") && strings.ContainsAny(s, "./")
}

// badPathChars explains why a path cannot go into an --if or --rules
// argument, or returns "".
func badPathChars(p string) string {
	if strings.ContainsAny(p, ",|\n") {
		return fmt.Sprintf("path %q: ',', '|' and newlines cannot be used in paths nfpipe passes in --if options", p)
	}
	return ""
}

// param decodes one kind parameter, checking its type with the flag.
func (d *decoder) param(fn *Function, kind *vnf.Kind, pd paramDef, p pair) {
	path := joinPath(fn.path, p.key)
	prm := Param{Flag: pd.name, list: pd.list, node: p.val, path: path}
	if pd.list {
		for _, it := range d.list(p.val, path, "values") {
			prm.Values = append(prm.Values, it.val)
			prm.at = append(prm.at, it)
		}
	} else {
		v, ok := d.scalar(p.val, path, typeWant(pd.typ))
		if !ok {
			return
		}
		if fs := d.opts.Flags(kind.Name); fs != nil {
			if err := fs.Set(pd.name, v); err != nil {
				d.errf(p.val, path, "bad value %q: want %s", v, typeWant(pd.typ))
				return
			}
		}
		prm.Values, prm.at = []string{v}, []item{{v, p.val, path}}
	}
	fn.Params = append(fn.Params, prm)
}

func typeWant(t string) string {
	switch t {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "an integer"
	case "duration":
		return "a duration such as 30s"
	case "bool":
		return "true or false"
	case "float32", "float64":
		return "a number"
	}
	return "a value"
}

var ifKeys = []string{"addresses", "mac", "mtu", "capture"}

func (d *decoder) interfaces(fn *Function, n *yaml.Node, path string) {
	if isNull(n) {
		d.errf(n, path, "no interfaces: add at least one (eth0: 192.0.2.1/24)")
		return
	}
	if !d.mapping(n, path, "interfaces by name (eth0: 192.0.2.1/24, or eth0: {addresses: [...], mtu: 9000})") {
		return
	}
	for _, p := range d.pairs(n, path) {
		ipath := joinPath(path, p.key)
		if !ifNameRE.MatchString(p.key) {
			d.errf(p.keyNode, ipath, "bad interface name %q: %s", p.key, ifNameRule)
			continue
		}
		ifc := &Interface{Name: p.key, fn: fn, node: p.keyNode, path: ipath}
		fn.Interfaces = append(fn.Interfaces, ifc)
		v := p.val
		if v.Kind != yaml.MappingNode {
			d.addresses(ifc, v, ipath)
			continue
		}
		m := d.fields(v, ipath, ifKeys, nil)
		if a, ok := m["addresses"]; ok {
			d.addresses(ifc, a.val, ipath+".addresses")
		}
		if a, ok := m["mac"]; ok {
			ifc.macNode = a.val
			if s, ok := d.scalar(a.val, ipath+".mac", "a MAC address"); ok {
				mac, err := net.ParseMAC(s)
				switch {
				case err != nil || len(mac) != 6:
					d.errf(a.val, ipath+".mac", "bad MAC %q: want six bytes such as 02:00:00:00:00:01", s)
				case mac[0]&1 != 0:
					d.errf(a.val, ipath+".mac", "MAC %s is a multicast address; an interface needs a unicast one (first byte even)", mac)
				default:
					ifc.MAC = mac
				}
			}
		}
		if a, ok := m["mtu"]; ok {
			ifc.mtuNode = a.val
			if s, ok := d.scalar(a.val, ipath+".mtu", "an MTU"); ok {
				mtu, err := strconv.ParseUint(s, 10, 32)
				if err != nil || mtu < 68 || mtu > netstack.MaxMTU {
					d.errf(a.val, ipath+".mtu", "bad MTU %q: want 68 to %d", s, netstack.MaxMTU)
				} else {
					ifc.MTU = uint32(mtu)
				}
			}
		}
		if a, ok := m["capture"]; ok {
			ifc.captureNode = a.val
			if s, ok := d.scalar(a.val, ipath+".capture", "a capture file path"); ok {
				if bad := badPathChars(s); bad != "" {
					d.errf(a.val, ipath+".capture", "%s", bad)
				} else {
					ifc.Capture, ifc.captureText = d.abs(s), d.shown(s)
				}
			}
		}
		for i, a := range ifc.Addrs {
			if a.Addr().Is6() && ifc.MTU != 0 && ifc.MTU < 1280 {
				d.errf(ifc.addrAt[i].node, ifc.addrAt[i].path, "IPv6 address %s needs an MTU of at least 1280 (mtu is %d)", a, ifc.MTU)
			}
		}
	}
}

func (d *decoder) addresses(ifc *Interface, n *yaml.Node, path string) {
	addrs, at := d.interfaceAddrs(n, path, "addresses such as 192.0.2.1/24")
	ifc.Addrs = append(ifc.Addrs, addrs...)
	ifc.addrAt = append(ifc.addrAt, at...)
}

// interfaceAddrs decodes a list of interface addresses (ADDR/LEN, no zone,
// neither unspecified nor multicast), with where each came from.
func (d *decoder) interfaceAddrs(n *yaml.Node, path, what string) (addrs []netip.Prefix, at []item) {
	for _, it := range d.list(n, path, what) {
		p, err := netstack.ParsePrefix(it.val)
		if err == nil && p.Addr().Zone() != "" {
			err = fmt.Errorf("bad address %q: no zones (%%%s) on an interface address", it.val, p.Addr().Zone())
		}
		if err != nil {
			d.errf(it.node, it.path, "%v", err)
			continue
		}
		if a := p.Addr(); a.IsUnspecified() || a.IsMulticast() {
			d.errf(it.node, it.path, "%s cannot be an interface address", a)
			continue
		}
		addrs = append(addrs, p)
		at = append(at, it)
	}
	return addrs, at
}

var linkKeys = []string{"name", "ends", "transport", "format", "path", "tap", "netns", "host", "replay", "record", "timing", "gso", "pack", "mirror"}

func (d *decoder) links(s *Spec, n *yaml.Node) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "links", "want a list of links ([fn.if, fn.if] or {ends: [...], transport: ...}), got a %s", kindName(n))
		return
	}
	for i, item := range n.Content {
		item = deref(item)
		path := index("links", i)
		l := &Link{node: item, path: path, keys: map[string]*yaml.Node{}}
		switch item.Kind {
		case yaml.SequenceNode:
			d.ends(l, item, path)
		case yaml.MappingNode:
			d.link(l, item, path)
		default:
			d.errf(item, path, "want a link ([fn.if, fn.if] or {ends: [...], ...}), got a %s", kindName(item))
			continue
		}
		if l.Transport == "" {
			l.Transport = Seqpacket
		}
		s.Links = append(s.Links, l)
	}
}

func (d *decoder) ends(l *Link, n *yaml.Node, path string) {
	for _, it := range d.list(n, path, "link ends such as nat.eth0") {
		l.endText = append(l.endText, it.val)
		l.endNodes = append(l.endNodes, it.node)
	}
}

// link decodes a link written as a mapping.
func (d *decoder) link(l *Link, n *yaml.Node, path string) {
	m := d.fields(n, path, linkKeys, nil)
	for k, p := range m {
		l.keys[k] = p.keyNode
	}
	str := func(key, what string) (string, *yaml.Node) {
		p, ok := m[key]
		if !ok {
			return "", nil
		}
		v, _ := d.scalar(p.val, path+"."+key, what)
		return v, p.val
	}
	if p, ok := m["ends"]; ok {
		if p.val.Kind != yaml.SequenceNode {
			d.errf(p.val, path+".ends", "want a list of one or two ends such as [nat.eth1, fw.eth0], got a %s", kindName(p.val))
		} else {
			d.ends(l, p.val, path+".ends")
		}
	} else {
		d.errf(n, path, "no ends: add ends: [fn.if, fn.if]")
	}
	if v, vn := str("name", "a link name"); v != "" {
		if linkNameRE.MatchString(v) {
			l.Name = v
		} else {
			d.errf(vn, path+".name", "bad link name %q: letters, digits, '.', '-' and '_', at most 64", v)
		}
	}
	if v, vn := str("transport", "a transport"); v != "" {
		t := Transport(v)
		if !slices.Contains(transports, t) {
			names := make([]string, len(transports))
			for i, t := range transports {
				names[i] = string(t)
			}
			d.errf(vn, path+".transport", "unknown transport %q%s (want %s)", v, suggest.DidYouMean(v, names), strings.Join(names, ", "))
			l.bad = true
			return
		}
		l.Transport = t
	}
	l.TAPName, _ = str("tap", "a TAP device name")
	if p, ok := m["netns"]; ok {
		d.netns(l, p.val, path+".netns")
	}
	if p, ok := m["host"]; ok {
		l.Host = d.tapHost(p.val, path+".host")
	}
	replay, replayNode := str("replay", "a capture file to replay")
	record, recordNode := str("record", "a capture file to record into")
	path0, pathNode := str("path", "a socket path")
	// An omitted transport follows from the keys that only one has.
	if _, ok := m["transport"]; !ok {
		switch {
		case l.TAPName != "" || m["netns"].val != nil || m["host"].val != nil:
			l.Transport = TAP
		case replay != "" || record != "":
			l.Transport = File
		case path0 != "":
			l.Transport = Unix
		default:
			l.Transport = Seqpacket
		}
	}
	only := func(key string, ts ...Transport) {
		if _, ok := m[key]; ok && !slices.Contains(ts, l.Transport) {
			var names []string
			for _, t := range ts {
				names = append(names, string(t))
			}
			list := names[0]
			if n := len(names); n > 1 {
				list = strings.Join(names[:n-1], ", ") + " and " + names[n-1]
			}
			d.errf(m[key].keyNode, path+"."+key, "%s applies to %s links, not %s", key, list, l.Transport)
		}
	}
	only("tap", TAP)
	only("netns", TAP)
	only("host", TAP)
	only("replay", File)
	only("record", File)
	only("timing", File)
	only("path", Unix)
	only("gso", Seqpacket, Stream, Pipe, FIFO, Unix, TAP)
	only("pack", Seqpacket)
	// Without tap: the runner names the device after the chain and the
	// link (TAPDevice).
	if l.Transport == TAP && l.TAPName != "" && !ifNameRE.MatchString(l.TAPName) {
		d.errf(m["tap"].val, path+".tap", "bad TAP device name %q: %s", l.TAPName, ifNameRule)
	}
	if l.Transport == File {
		if replay == "" && record == "" {
			d.errf(n, path, "a file link needs replay: FILE, record: FILE, or both")
		}
		for _, f := range []struct {
			v   string
			n   *yaml.Node
			key string
			dst *string
		}{{replay, replayNode, "replay", &l.Replay}, {record, recordNode, "record", &l.Record}} {
			if f.v == "" {
				continue
			}
			if bad := badPathChars(f.v); bad != "" {
				d.errf(f.n, path+"."+f.key, "%s", bad)
				continue
			}
			*f.dst = d.abs(f.v)
		}
		if l.Replay != "" {
			if _, err := stat(d.opts, l.Replay); err != nil {
				d.errf(replayNode, path+".replay", "%s: %s", d.shown(replay), cleanIOError(err))
			}
		}
	}
	if path0 != "" && l.Transport == Unix {
		if bad := badPathChars(path0); bad != "" {
			d.errf(pathNode, path+".path", "%s", bad)
		} else {
			l.Path = d.inRun("links", path0)
		}
	}
	if p, ok := m["timing"]; ok {
		if v, ok := d.scalar(p.val, path+".timing", "original or fast"); ok {
			switch v {
			case "original":
				l.OriginalTiming = true
				if l.Transport == File && replay == "" {
					d.errf(p.val, path+".timing", "timing applies to a replay; this link only records")
				}
			case "fast":
			default:
				d.errf(p.val, path+".timing", "unknown timing %q (want original or fast)", v)
			}
		}
	}
	l.GSO = d.onOff(m, path, "gso")
	l.Pack = d.onOff(m, path, "pack")
	if p, ok := m["format"]; ok {
		if v, ok := d.scalar(p.val, path+".format", "a frame format"); ok {
			if _, err := frame.ParseFormat(v); err != nil {
				d.errf(p.val, path+".format", "%v", err)
			} else if !l.Transport.framed() {
				d.errf(p.val, path+".format", "a %s link carries one frame per message: format applies to stream, pipe, fifo, unix, file, stdin and stdout links", l.Transport)
			} else {
				l.Format = v
			}
		}
	}
	if p, ok := m["mirror"]; ok {
		l.Mirror = d.mirror(p.val, path+".mirror")
	}
}

var mirrorKeys = []string{"capture", "fifo", "function", "at"}

// mirror decodes a mirror: a capture file name, or a mapping with one of
// capture, fifo and function, and optionally at.
func (d *decoder) mirror(n *yaml.Node, path string) *Mirror {
	mr := &Mirror{node: n, path: path}
	if n.Kind == yaml.ScalarNode {
		v, ok := d.scalar(n, path, "a capture file, or {capture|fifo|function: ...}")
		if !ok {
			return nil
		}
		if bad := badPathChars(v); bad != "" {
			d.errf(n, path, "%s", bad)
			return nil
		}
		mr.Kind, mr.Path = MirrorCapture, d.abs(v)
		return mr
	}
	if !d.mapping(n, path, "a mirror (a capture file, or {capture|fifo|function: ...})") {
		return nil
	}
	m := d.fields(n, path, mirrorKeys, nil)
	var set []string
	for _, k := range []string{"capture", "fifo", "function"} {
		if _, ok := m[k]; ok {
			set = append(set, k)
		}
	}
	if len(set) != 1 {
		if len(set) == 0 {
			d.errf(n, path, "a mirror needs one of capture: FILE, fifo: PATH or function: FN.IF")
		} else {
			d.errf(m[set[1]].keyNode, path+"."+set[1], "a mirror has one target: %s or %s, not both", set[0], set[1])
		}
		return nil
	}
	p := m[set[0]]
	v, ok := d.scalar(p.val, path+"."+set[0], "a target")
	if !ok {
		return nil
	}
	switch set[0] {
	case "capture", "fifo":
		if bad := badPathChars(v); bad != "" {
			d.errf(p.val, path+"."+set[0], "%s", bad)
			return nil
		}
		if set[0] == "capture" {
			mr.Kind, mr.Path = MirrorCapture, d.abs(v)
		} else {
			mr.Kind, mr.Path = MirrorFIFO, d.inRun("mirrors", v)
		}
	case "function":
		mr.Kind, mr.monitorText, mr.monitorNode = MirrorFunction, v, p.val
	}
	if a, ok := m["at"]; ok {
		if v, ok := d.scalar(a.val, path+".at", "the end that copies (fn.if)"); ok {
			mr.atText, mr.atNode = v, a.val
		}
	}
	return mr
}

// pipeline decodes `pipeline: [a, b, c]`. Items name functions, or
// function files whose base name names the function.
func (d *decoder) pipeline(s *Spec, n *yaml.Node) {
	if n.Kind != yaml.SequenceNode {
		d.errf(n, "pipeline", "want a list of functions such as [nat, filter], got a %s", kindName(n))
		return
	}
	if len(n.Content) == 0 {
		d.errf(n, "pipeline", "an empty pipeline: list its functions, such as [nat, filter]")
		return
	}
	s.Pipeline = nil
	d.pipelineFiles = map[*yaml.Node]*Function{}
	for i, item := range n.Content {
		item = deref(item)
		path := index("pipeline", i)
		v, ok := d.scalar(item, path, "a function name or function file")
		if !ok {
			continue
		}
		d.pipelineNodes = append(d.pipelineNodes, item)
		if ext := filepath.Ext(v); ext == ".yaml" || ext == ".yml" {
			name := strings.TrimSuffix(filepath.Base(v), ext)
			if !chainNameRE.MatchString(name) {
				d.errf(item, path, "function file %s: the name %q it gives the function is bad: %s", v, name, nameRule)
				continue
			}
			if slices.ContainsFunc(s.Functions, func(f *Function) bool { return f.Name == name }) {
				d.errf(item, path, "function file %s would be a second function %q", v, name)
				continue
			}
			if fn := d.function(name, item, joinPath("functions", name), item); fn != nil {
				d.pipelineFiles[item] = fn
				s.Functions = append(s.Functions, fn)
			}
		}
	}
}
