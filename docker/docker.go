// Package docker holds the product image's Dockerfile and reads it with BuildKit's own
// parser, so the rehearsal builder and the tests use the build args and labels that the
// real build uses instead of a second copy.
package docker

import (
	"bytes"
	_ "embed"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// DriverDockerfilePath is the Dockerfile's path inside the project repository.
const DriverDockerfilePath = "docker/intel-dgpu-driver.Dockerfile"

// DriverDockerfile is docker/intel-dgpu-driver.Dockerfile as compiled into the binary; it
// seeds the local forge's repository in the embedded default.
//
//go:embed intel-dgpu-driver.Dockerfile
var DriverDockerfile []byte

// Stage is one FROM section of a Dockerfile.
type Stage struct {
	Name string // the AS name, if any
	From string // the image expression as written
	// Args are the ARGs declared in the stage, with their defaults ("" if none).
	Args map[string]string
	// Labels in declaration order of their keys, values as written (with ${VAR}s).
	Labels map[string]string
	User   string
}

// Dockerfile is the parsed form of a Dockerfile.
type Dockerfile struct {
	// GlobalArgs are the ARGs before the first FROM, with their defaults.
	GlobalArgs map[string]string
	Stages     []Stage
}

// Final is the last stage: the image that is shipped.
func (d Dockerfile) Final() Stage { return d.Stages[len(d.Stages)-1] }

// Parse reads a Dockerfile with BuildKit's parser.
func Parse(content []byte) (Dockerfile, error) {
	res, err := parser.Parse(bytes.NewReader(content))
	if err != nil {
		return Dockerfile{}, fmt.Errorf("parse Dockerfile: %w", err)
	}
	d := Dockerfile{GlobalArgs: map[string]string{}}
	var cur *Stage
	for _, n := range res.AST.Children {
		words := nodeWords(n)
		switch strings.ToLower(n.Value) {
		case "from":
			if len(words) == 0 {
				return Dockerfile{}, fmt.Errorf("Dockerfile line %d: FROM without an image", n.StartLine)
			}
			s := Stage{From: words[0], Args: map[string]string{}, Labels: map[string]string{}}
			if len(words) == 3 && strings.EqualFold(words[1], "as") {
				s.Name = words[2]
			}
			d.Stages = append(d.Stages, s)
			cur = &d.Stages[len(d.Stages)-1]
		case "arg":
			for _, w := range words {
				k, v, _ := strings.Cut(w, "=")
				if cur == nil {
					d.GlobalArgs[k] = unquote(v)
				} else {
					cur.Args[k] = unquote(v)
				}
			}
		case "label":
			if cur == nil {
				return Dockerfile{}, fmt.Errorf("Dockerfile line %d: LABEL before FROM", n.StartLine)
			}
			// The parser yields key, value, "=" triples for LABEL.
			for i := 0; i+1 < len(words); i += 3 {
				cur.Labels[unquote(words[i])] = unquote(words[i+1])
			}
		case "user":
			if cur != nil && len(words) > 0 {
				cur.User = words[0]
			}
		}
	}
	if len(d.Stages) == 0 {
		return Dockerfile{}, fmt.Errorf("Dockerfile has no FROM")
	}
	return d, nil
}

// ReadFile parses a Dockerfile on disk.
func ReadFile(path string) (Dockerfile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Dockerfile{}, err
	}
	return Parse(b)
}

// BuildArgNames lists every ARG the Dockerfile declares, sorted.
func (d Dockerfile) BuildArgNames() []string {
	set := map[string]bool{}
	for k := range d.GlobalArgs {
		set[k] = true
	}
	for _, s := range d.Stages {
		for k := range s.Args {
			set[k] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// ExpandLabels returns the final stage's labels with ${VAR} and $VAR replaced from args
// (falling back to the Dockerfile's defaults), as docker build does.
func (d Dockerfile) ExpandLabels(args map[string]string) map[string]string {
	final := d.Final()
	lookup := func(k string) string {
		if v, ok := args[k]; ok {
			return v
		}
		if v, ok := final.Args[k]; ok && v != "" {
			return v
		}
		return d.GlobalArgs[k]
	}
	out := make(map[string]string, len(final.Labels))
	for k, v := range final.Labels {
		out[k] = os.Expand(v, lookup)
	}
	return out
}

func nodeWords(n *parser.Node) []string {
	var out []string
	for c := n.Next; c != nil; c = c.Next {
		out = append(out, c.Value)
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// PinnedDriver returns the driver set the Dockerfile pins with the defaults of its
// I915_RELEASE, FIRMWARE_RELEASE and DRIVER_VERSION build args.
func (d Dockerfile) PinnedDriver() (i915, firmware, version string) {
	return d.GlobalArgs["I915_RELEASE"], d.GlobalArgs["FIRMWARE_RELEASE"], d.GlobalArgs["DRIVER_VERSION"]
}

var pinRE = map[string]*regexp.Regexp{
	"I915_RELEASE":     regexp.MustCompile(`(?m)^ARG I915_RELEASE=.*$`),
	"FIRMWARE_RELEASE": regexp.MustCompile(`(?m)^ARG FIRMWARE_RELEASE=.*$`),
	"DRIVER_VERSION":   regexp.MustCompile(`(?m)^ARG DRIVER_VERSION=.*$`),
}

// PinDriver rewrites the Dockerfile's pinned driver ARG defaults and checks the result
// parses and pins what was asked; the rest of the file is kept byte for byte.
func PinDriver(content []byte, i915, firmware, version string) ([]byte, error) {
	out := content
	var missing []string
	for _, p := range []struct{ name, value string }{{"I915_RELEASE", i915}, {"FIRMWARE_RELEASE", firmware}, {"DRIVER_VERSION", version}} {
		re := pinRE[p.name]
		if len(re.FindAllIndex(out, -1)) != 1 {
			missing = append(missing, p.name)
			continue
		}
		out = re.ReplaceAll(out, []byte("ARG "+p.name+"="+p.value))
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("the Dockerfile must pin each of %s on exactly one line (ARG NAME=<value>)", strings.Join(missing, ", "))
	}
	d, err := Parse(out)
	if err != nil {
		return nil, err
	}
	if a, b, c := d.PinnedDriver(); a != i915 || b != firmware || c != version {
		return nil, fmt.Errorf("the bumped Dockerfile pins %s, %s, %s instead", a, b, c)
	}
	return out, nil
}
