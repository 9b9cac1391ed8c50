// Package rehearsal holds the stand-ins of the embedded default for the parts of a
// release that need an OpenShift cluster with GPU nodes: the build, the GPU test and the
// debug workload. Each says in its evidence that it is a stand-in. What they do for real:
// the builder reads the real Dockerfile with BuildKit's parser, assembles an image in the
// KMM layout with the labels the Dockerfile declares and pushes it to a real registry;
// the tester reads that image back and checks that the module tree KMM will load is there.
package rehearsal

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"dgpu-release/debug"
	"dgpu-release/docker"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
	"dgpu-release/internal/rpm"
)

// Notes that say plainly what each stand-in is.
const (
	BuildNote = "rehearsal stand-in: image assembled in the KMM layout without compiling (no OpenShift Build, no Driver Toolkit)"
	TestNote  = "rehearsal stand-in: no GPU node; the image layout was checked and the outcome was chosen by --fail-at"
	DebugNote = "rehearsal stand-in: debug manifests rendered to a file, not applied to a cluster"
	// StandInLabel marks images the rehearsal builder made.
	StandInLabel = "io.dgpu-release.stand-in"
)

// Builder assembles driver images.
type Builder struct {
	Registry *registry.Client
}

// Build assembles and pushes the image.
func (b *Builder) Build(ctx context.Context, spec release.BuildSpec, progress release.Progress) (release.BuildOutput, error) {
	fail := func(summary, log string) (release.BuildOutput, error) {
		return release.BuildOutput{}, &release.StepFailure{Evidence: release.Evidence{Step: release.StepBuild, Summary: summary, LogTail: log, StandIn: BuildNote,
			Details: map[string]string{"build": spec.Name, "dockerfile_commit": spec.DockerfileCommit}}}
	}
	progress("parsing the Dockerfile at " + short(spec.DockerfileCommit))
	df, err := docker.Parse(spec.Dockerfile)
	if err != nil {
		return fail("the Dockerfile does not parse", err.Error())
	}
	declared := map[string]bool{}
	for _, a := range df.BuildArgNames() {
		declared[a] = true
	}
	var undeclared []string
	for a := range spec.Args {
		if !declared[a] {
			undeclared = append(undeclared, a)
		}
	}
	sort.Strings(undeclared)
	if len(undeclared) > 0 {
		return fail("the Dockerfile does not declare build args "+strings.Join(undeclared, ", "),
			fmt.Sprintf("[Warning] One or more build-args %v were not consumed", undeclared))
	}
	if spec.Rehearsal.FailAt == release.StepBuild && spec.Round == 1 {
		return fail("rehearsed build failure (--fail-at build, round 1)",
			"  CC [M]  drivers/gpu/drm/i915/i915_driver.o\n"+
				"drivers/gpu/drm/i915/i915_driver.c:1: error: rehearsed failure, nothing was compiled\n"+
				"make[1]: *** [scripts/Makefile.build:243: drivers/gpu/drm/i915/i915_driver.o] Error 1")
	}
	kernel := spec.Args[release.ArgKernel]
	progress("assembling the KMM layout for " + kernel)
	img, err := assemble(df, spec)
	if err != nil {
		return release.BuildOutput{}, err
	}
	ref := spec.StagingRepo + ":" + spec.Tag
	progress("pushing " + ref)
	digest, err := b.Registry.Push(ctx, img, ref)
	if err != nil {
		return release.BuildOutput{}, err
	}
	layers, _ := img.Layers()
	return release.BuildOutput{
		Image: release.Image{Repository: spec.StagingRepo, Tag: spec.Tag, Digest: digest},
		Evidence: release.Evidence{Step: release.StepBuild, StandIn: BuildNote,
			Summary: fmt.Sprintf("assembled %s@%s (%d layers) from Dockerfile %s", spec.StagingRepo, short(digest), len(layers), short(spec.DockerfileCommit)),
			Details: map[string]string{"build": spec.Name, "digest": digest, "dockerfile_commit": spec.DockerfileCommit}},
	}, nil
}

func assemble(df docker.Dockerfile, spec release.BuildSpec) (v1.Image, error) {
	k := spec.Args[release.ArgKernel]
	modDir := "/opt/lib/modules/" + k
	stub := func(what string) []byte {
		return []byte(fmt.Sprintf("%s\n%s, built for kernel %s from i915 backports %s and firmware %s\n", BuildNote, what, k, spec.Args[release.ArgI915], spec.Args[release.ArgFirmware]))
	}
	layerFiles := [][]registry.File{
		{
			{Path: "/licenses/i915/COPYING", Content: []byte("GNU GENERAL PUBLIC LICENSE Version 2 (the i915 backports' license, stand-in text)\n")},
			{Path: "/licenses/firmware/LICENSE", Content: []byte("Intel firmware redistribution license (stand-in text)\n")},
		},
		{
			{Path: modDir + "/updates/drivers/gpu/drm/i915/i915.ko", Content: stub("i915.ko placeholder, not a kernel module")},
			{Path: modDir + "/updates/drivers/platform/x86/intel/vsec/intel_vsec.ko", Content: stub("intel_vsec.ko placeholder")},
			{Path: modDir + "/modules.dep", Content: []byte("updates/drivers/gpu/drm/i915/i915.ko: updates/drivers/platform/x86/intel/vsec/intel_vsec.ko\nupdates/drivers/platform/x86/intel/vsec/intel_vsec.ko:\n")},
		},
		{
			{Path: "/firmware/i915/dg2_guc_70.bin", Content: stub("Flex (dg2) GuC firmware placeholder")},
			{Path: "/firmware/i915/pvc_guc_70.bin", Content: stub("Max (pvc) GuC firmware placeholder")},
		},
	}
	base, err := BaseLayer()
	if err != nil {
		return nil, err
	}
	layers := []v1.Layer{base}
	for _, files := range layerFiles {
		l, err := registry.Layer(files)
		if err != nil {
			return nil, err
		}
		layers = append(layers, l)
	}
	labels := df.ExpandLabels(spec.Args)
	labels[StandInLabel] = BuildNote
	labels[release.LabelBuildKey] = string(spec.BuildKey)
	return registry.Assemble(layers, v1.Config{Labels: labels, User: df.Final().User, Env: []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"}})
}

// BaseNote says what the rehearsal base layer is.
const BaseNote = "rehearsal stand-in: the base layer stands in for UBI minimal (a few files and a real rpm database listing stand-in packages) and is listed as certified only in the embedded default's own UBI layer list"

// basePackages are the stand-in packages of the base layer, with the files they own.
var basePackages = []rpm.Package{
	{Name: "dgpu-rehearsal-base-release", Version: "9.4", Release: "1", Arch: "noarch", Files: []rpm.File{
		{Path: "/etc/os-release", Mode: 0o100644, Flags: rpm.FileConfig},
	}},
	{Name: "kmod", Version: "28", Release: "9.el9", Arch: "x86_64", Files: []rpm.File{
		{Path: "/usr/bin/kmod", Mode: 0o100755},
		{Path: "/usr/sbin/modprobe", Mode: 0o120777},
		{Path: "/usr/sbin/depmod", Mode: 0o120777},
	}},
}

var base struct {
	once  sync.Once
	layer v1.Layer
	err   error
}

// BaseLayer is the stand-in for the UBI minimal base: the same bytes every time.
func BaseLayer() (v1.Layer, error) {
	base.once.Do(func() {
		db, err := rpm.SQLiteBytes(basePackages)
		if err != nil {
			base.err = err
			return
		}
		base.layer, base.err = registry.Layer([]registry.File{
			{Path: "/etc/os-release", Content: []byte("NAME=\"dgpu-release rehearsal base\"\nID=rehearsal\n# " + BaseNote + "\n")},
			{Path: "/usr/bin/kmod", Mode: 0o755, Content: []byte("#!/bin/sh\n# " + BaseNote + "\n")},
			{Path: "/var/lib/rpm/rpmdb.sqlite", Content: db},
		})
	})
	return base.layer, base.err
}

// WriteUBIList writes the embedded default's certified UBI layer list: the stand-in base
// layer, marked as such.
func WriteUBIList(path string) error {
	l, err := BaseLayer()
	if err != nil {
		return err
	}
	id, err := l.DiffID()
	if err != nil {
		return err
	}
	return os.WriteFile(path, []byte("# "+BaseNote+"\n"+id.String()+"\n"), 0o644)
}

// Tester checks the staged image in place of a GPU node.
type Tester struct {
	Registry *registry.Client
}

// Test reads the staged image and checks the module tree and firmware KMM will load.
func (t *Tester) Test(ctx context.Context, spec release.TestSpec, progress release.Progress) (release.TestOutput, error) {
	ev := release.Evidence{Step: release.StepGPUTest, StandIn: TestNote, Details: map[string]string{"image": spec.Image, "node": "rehearsal-node"}}
	progress("reading " + spec.Image)
	img, err := t.Registry.Image(ctx, spec.Image)
	if err != nil {
		return release.TestOutput{}, err
	}
	found, err := paths(img, "opt/lib/modules/"+spec.Kernel+"/", "firmware/i915/")
	if err != nil {
		return release.TestOutput{}, err
	}
	var log strings.Builder
	fmt.Fprintf(&log, "# %s\n", TestNote)
	missing := false
	for _, want := range []string{"opt/lib/modules/" + spec.Kernel + "/modules.dep", "opt/lib/modules/" + spec.Kernel + "/updates/drivers/gpu/drm/i915/i915.ko"} {
		if found[want] {
			fmt.Fprintf(&log, "found /%s\n", want)
		} else {
			fmt.Fprintf(&log, "MISSING /%s\n", want)
			missing = true
		}
	}
	fw := 0
	for p := range found {
		if strings.HasPrefix(p, "firmware/i915/") {
			fw++
		}
	}
	fmt.Fprintf(&log, "firmware files under /firmware/i915: %d\n", fw)
	if missing || fw == 0 {
		ev.Summary = "the image lacks the module tree or firmware KMM loads for kernel " + spec.Kernel
		ev.LogTail = log.String()
		return release.TestOutput{}, &release.StepFailure{Evidence: ev}
	}
	if spec.Rehearsal.FailAt == release.StepGPUTest && spec.Round == 1 {
		log.WriteString("clinfo: Number of platforms 0\n(rehearsed failure: --fail-at gpu-test, round 1)\n")
		ev.Summary = "rehearsed GPU test failure (--fail-at gpu-test, round 1): clinfo found no OpenCL platform"
		ev.LogTail = log.String()
		return release.TestOutput{}, &release.StepFailure{Evidence: ev}
	}
	log.WriteString("clinfo: Number of platforms 1 (rehearsed outcome)\n")
	ev.Summary = "module tree and firmware present for " + spec.Kernel + "; rehearsed clinfo passed"
	ev.LogTail = log.String()
	return release.TestOutput{Node: "rehearsal-node", Evidence: ev}, nil
}

// paths lists the regular files under the prefixes in the image's final filesystem.
func paths(img v1.Image, prefixes ...string) (map[string]bool, error) {
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rc.Close()
				return nil, err
			}
			p := strings.TrimPrefix(path.Clean("/"+h.Name), "/")
			if strings.HasPrefix(path.Base(p), ".wh.") {
				delete(out, path.Join(path.Dir(p), strings.TrimPrefix(path.Base(p), ".wh.")))
				continue
			}
			for _, pre := range prefixes {
				if strings.HasPrefix(p, pre) && h.Typeflag == tar.TypeReg {
					out[p] = true
				}
			}
		}
		rc.Close()
	}
	return out, nil
}

// Debug writes the debug workload's manifests to a folder instead of a cluster.
type Debug struct {
	Dir string
}

// Deploy renders the manifests to <dir>/<pod>.yaml.
func (d *Debug) Deploy(_ context.Context, spec release.DebugSpec) (release.DebugWorkload, error) {
	s := debug.Spec{WorkflowID: spec.WorkflowID, Step: string(spec.Step), Kernel: spec.Kernel, Image: spec.Image, NodeName: spec.Node}
	y, err := debug.Render(s)
	if err != nil {
		return release.DebugWorkload{}, err
	}
	if err := os.MkdirAll(d.Dir, 0o755); err != nil {
		return release.DebugWorkload{}, err
	}
	name := debug.PodName(spec.WorkflowID)
	file := filepath.Join(d.Dir, name+".yaml")
	header := "# " + DebugNote + "\n"
	if err := os.WriteFile(file, append([]byte(header), y...), 0o644); err != nil {
		return release.DebugWorkload{}, err
	}
	return release.DebugWorkload{Name: name, Attach: debug.AttachCommand(s), StandIn: DebugNote, Manifest: file}, nil
}

// Remove deletes the rendered manifests; a missing file is no error.
func (d *Debug) Remove(_ context.Context, name string) error {
	err := os.Remove(filepath.Join(d.Dir, name+".yaml"))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

func short(s string) string {
	s = strings.TrimPrefix(s, "sha256:")
	if len(s) > 12 {
		return s[:12]
	}
	return s
}
