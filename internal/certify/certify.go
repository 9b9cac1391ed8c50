// Package certify runs the container-policy checks of Red Hat's certification tool
// (openshift-preflight) natively on go-containerregistry images.
//
// The image is inspected in one pass: the manifest, the config, the repository's tags,
// and each layer's tar stream read once, shared by every check. Checks then judge the
// inspection, so adding a check never adds another read of the layers.
package certify

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"dgpu-release/internal/release"
	"dgpu-release/internal/rpm"
)

// Engine identifies this implementation in results documents.
const (
	EngineName    = "dgpu-release/certify"
	EngineVersion = "0.1.0"
)

// Policy names, as preflight spells them.
type Policy string

const (
	PolicyContainer      Policy = "container"
	PolicyRoot           Policy = "root"
	PolicyScratchNonRoot Policy = "scratch-nonroot"
	PolicyScratchRoot    Policy = "scratch-root"
)

// Check names, as preflight spells them.
const (
	HasLicense                 = "HasLicense"
	HasUniqueTag               = "HasUniqueTag"
	LayerCountAcceptable       = "LayerCountAcceptable"
	HasNoProhibitedPackages    = "HasNoProhibitedPackages"
	HasRequiredLabel           = "HasRequiredLabel"
	HasNoProhibitedLabels      = "HasNoProhibitedLabels"
	RunAsNonRoot               = "RunAsNonRoot"
	HasModifiedFiles           = "HasModifiedFiles"
	BasedOnUbi                 = "BasedOnUbi"
	HasProhibitedContainerName = "HasProhibitedContainerName"
)

// PolicyChecks lists the checks each policy runs, in preflight's order.
var PolicyChecks = map[Policy][]string{
	PolicyContainer:      {HasLicense, HasUniqueTag, LayerCountAcceptable, HasNoProhibitedPackages, HasRequiredLabel, HasNoProhibitedLabels, RunAsNonRoot, HasModifiedFiles, BasedOnUbi, HasProhibitedContainerName},
	PolicyRoot:           {HasLicense, HasUniqueTag, LayerCountAcceptable, HasNoProhibitedPackages, HasRequiredLabel, HasNoProhibitedLabels, HasModifiedFiles, BasedOnUbi, HasProhibitedContainerName},
	PolicyScratchNonRoot: {HasLicense, HasUniqueTag, LayerCountAcceptable, HasRequiredLabel, HasNoProhibitedLabels, RunAsNonRoot, HasProhibitedContainerName},
	PolicyScratchRoot:    {HasLicense, HasUniqueTag, LayerCountAcceptable, HasRequiredLabel, HasNoProhibitedLabels, HasProhibitedContainerName},
}

// ParsePolicy checks a policy name.
func ParsePolicy(s string) (Policy, error) {
	p := Policy(s)
	if _, ok := PolicyChecks[p]; !ok {
		return "", &release.FieldError{Field: "policy", Value: s, Accepted: "one of container, root, scratch-nonroot, scratch-root"}
	}
	return p, nil
}

// Verdict of a check.
type Verdict int

const (
	Pass Verdict = iota
	Fail
	Error
)

// Result is one check's verdict with its reason.
type Result struct {
	Verdict Verdict
	Reason  string
}

// Check is one certification check.
type Check interface {
	Name() string
	Description() string
	Help() string
	Validate(ctx context.Context, in *Inspection) Result
}

// Entry is one tar entry of a layer.
type Entry struct {
	Path     string // cleaned, without leading slash
	Type     byte
	Size     int64
	Mode     int64
	Whiteout bool // an OCI whiteout that deletes Path in lower layers
	Opaque   bool // an opaque-directory whiteout for Path
}

// LayerInfo is what the single pass keeps of a layer.
type LayerInfo struct {
	Digest  string // compressed, as in the manifest
	DiffID  string // uncompressed, as in the config's rootfs
	Entries []Entry
	// RPMChanged is set when the layer writes (or deletes) the rpm database; Packages is
	// then the package set after this layer.
	RPMChanged bool
	RPMPath    string
	Packages   []rpm.Package
}

// Inspection is everything the checks may judge.
type Inspection struct {
	Ref        string // the image reference, by digest
	Repository string // the repository path without the registry host
	Tags       []string
	Config     *v1.ConfigFile
	Layers     []LayerInfo
	// Files is the final filesystem after applying every layer and its whiteouts.
	Files map[string]Entry
}

// HasRPMDB reports whether any layer holds an rpm database.
func (in *Inspection) HasRPMDB() bool {
	for _, l := range in.Layers {
		if l.RPMChanged {
			return true
		}
	}
	return false
}

// PackagesAfter is the package set once layer i is applied (nil before any rpm database).
func (in *Inspection) PackagesAfter(i int) []rpm.Package {
	for ; i >= 0; i-- {
		if in.Layers[i].RPMChanged {
			return in.Layers[i].Packages
		}
	}
	return nil
}

// Target is an image to certify.
type Target struct {
	Ref        string   // by digest
	Repository string   // repository path without host, e.g. intel/intel-dgpu-driver
	Tags       []string // tags of the repository
	Image      v1.Image
}

// Inspect reads the image once: config, manifest, and every layer's tar stream.
func Inspect(ctx context.Context, t Target) (*Inspection, error) {
	cfg, err := t.Image.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("read image config: %w", err)
	}
	layers, err := t.Image.Layers()
	if err != nil {
		return nil, fmt.Errorf("read image layers: %w", err)
	}
	in := &Inspection{Ref: t.Ref, Repository: t.Repository, Tags: t.Tags, Config: cfg, Files: map[string]Entry{}}
	for i, l := range layers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, err := l.Digest()
		if err != nil {
			return nil, err
		}
		diffID, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		info := LayerInfo{Digest: d.String(), DiffID: diffID.String()}
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, d, err)
		}
		err = readLayer(rc, &info)
		rc.Close()
		if err != nil {
			return nil, fmt.Errorf("layer %d (%s): %w", i, d, err)
		}
		apply(in.Files, info.Entries)
		in.Layers = append(in.Layers, info)
	}
	return in, nil
}

// maxRPMDB bounds the rpm database copied out of a layer.
const maxRPMDB = 1 << 30

func readLayer(r io.Reader, info *LayerInfo) error {
	tr := tar.NewReader(r)
	var dbFile string
	defer func() {
		if dbFile != "" {
			os.Remove(dbFile)
		}
	}()
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
		dir, base := path.Split(p)
		e := Entry{Path: p, Type: h.Typeflag, Size: h.Size, Mode: h.Mode}
		switch {
		case base == ".wh..wh..opq":
			e = Entry{Path: strings.TrimSuffix(dir, "/"), Opaque: true}
		case strings.HasPrefix(base, ".wh."):
			e = Entry{Path: dir + strings.TrimPrefix(base, ".wh."), Whiteout: true}
		}
		info.Entries = append(info.Entries, e)
		if rank := rpmDBRank(e.Path); rank >= 0 && (info.RPMPath == "" || rank < rpmDBRank(info.RPMPath)) {
			info.RPMChanged, info.RPMPath, info.Packages = true, e.Path, []rpm.Package{}
			if e.Whiteout || (h.Typeflag != tar.TypeReg && h.Typeflag != tar.TypeRegA) {
				continue
			}
			// rpm databases are read from a file: copy this one out of the stream.
			if dbFile != "" {
				os.Remove(dbFile)
			}
			f, err := os.CreateTemp("", "rpmdb-*")
			if err != nil {
				return err
			}
			dbFile = f.Name()
			_, err = io.Copy(f, io.LimitReader(tr, maxRPMDB))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("copy /%s: %w", e.Path, err)
			}
		}
	}
	if dbFile != "" {
		pkgs, err := rpm.ReadFile(dbFile)
		if err != nil {
			return fmt.Errorf("/%s: %w", info.RPMPath, err)
		}
		info.Packages = pkgs
	}
	return nil
}

// rpmDBRank is the preference of an rpm database path (lower is preferred), or -1.
func rpmDBRank(p string) int {
	for i, d := range rpm.DatabasePaths {
		if p == d {
			return i
		}
	}
	return -1
}

func apply(files map[string]Entry, entries []Entry) {
	for _, e := range entries {
		switch {
		case e.Opaque:
			removeUnder(files, e.Path)
		case e.Whiteout:
			delete(files, e.Path)
			removeUnder(files, e.Path)
		default:
			files[e.Path] = e
		}
	}
}

func removeUnder(files map[string]Entry, dir string) {
	prefix := dir + "/"
	for p := range files {
		if strings.HasPrefix(p, prefix) {
			delete(files, p)
		}
	}
}

// Options choose the policy and where certified UBI layers come from.
type Options struct {
	Policy Policy
	// UBI answers which of an image's layers are certified UBI layers (BasedOnUbi).
	// Without it, BasedOnUbi reports an error, never a pass.
	UBI UBISource
}

// Run inspects the image once and runs the policy's checks.
func Run(ctx context.Context, t Target, opts Options) (release.CertificationResult, error) {
	policy := opts.Policy
	if policy == "" {
		policy = PolicyContainer
	}
	names, ok := PolicyChecks[policy]
	if !ok {
		_, err := ParsePolicy(string(policy))
		return release.CertificationResult{}, err
	}
	in, err := Inspect(ctx, t)
	if err != nil {
		return release.CertificationResult{}, err
	}
	res := release.CertificationResult{
		Image:       t.Ref,
		TestLibrary: release.TestLibrary{Name: EngineName, Version: EngineVersion},
		Policy:      string(policy),
		Results:     release.CheckResults{Passed: []release.CheckOutcome{}, Failed: []release.CheckOutcome{}, Errors: []release.CheckOutcome{}},
	}
	all := Checks(opts)
	for _, n := range names {
		c := all[n]
		start := time.Now()
		r := c.Validate(ctx, in)
		o := release.CheckOutcome{Name: c.Name(), Description: c.Description(), Help: c.Help(), Reason: r.Reason, ElapsedTime: time.Since(start).Milliseconds()}
		switch r.Verdict {
		case Pass:
			res.Results.Passed = append(res.Results.Passed, o)
		case Fail:
			res.Results.Failed = append(res.Results.Failed, o)
		default:
			res.Results.Errors = append(res.Results.Errors, o)
		}
	}
	res.Passed = len(res.Results.Failed) == 0 && len(res.Results.Errors) == 0
	return res, nil
}

// Summary is a one-line account of a result.
func Summary(r release.CertificationResult) string {
	verdict := "PASSED"
	if !r.Passed {
		verdict = "FAILED"
	}
	s := fmt.Sprintf("%s (policy %s): %d passed, %d failed, %d errors", verdict, r.Policy, len(r.Results.Passed), len(r.Results.Failed), len(r.Results.Errors))
	if len(r.NotRun) > 0 {
		names := make([]string, len(r.NotRun))
		for i, n := range r.NotRun {
			names[i] = n.Name
		}
		sort.Strings(names)
		s += fmt.Sprintf(", %d not run (%s)", len(r.NotRun), strings.Join(names, ", "))
	}
	return s
}
