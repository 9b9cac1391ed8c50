// Package wiring is the one place that turns configuration into backends, activities and
// a registered worker. The worker program and the starter's embedded default both use it.
package wiring

import (
	"context"
	"fmt"
	"path/filepath"

	"go.temporal.io/sdk/worker"

	"dgpu-release/activities"
	"dgpu-release/docker"
	"dgpu-release/internal/catalog"
	"dgpu-release/internal/certify"
	"dgpu-release/internal/cluster"
	"dgpu-release/internal/forge"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/rehearsal"
	"dgpu-release/internal/release"
	"dgpu-release/workflows"
)

// Defaults for where things go.
const (
	DefaultProjectRepo = "intel/intel-data-center-gpu-driver-for-openshift"
	DefaultDriverRepo  = "intel-gpu/intel-gpu-i915-backports"
	StagingPath        = "intel/intel-dgpu-driver-staging"
	ReleasePath        = "intel/intel-dgpu-driver"
)

// Options of the rehearsal (embedded default) backends.
type Options struct {
	StateDir     string
	RegistryHost string // host:port of the embedded registry
	ProjectRepo  string
	DriverRepo   string
	Policy       certify.Policy
	// CatalogProject, when set, records published images in the certification catalog
	// API (key from $DGPU_CATALOG_API_KEY) instead of the local catalog, and asks it for
	// certified UBI layers unless UBILayers names a list file.
	CatalogProject string
	CatalogURL     string
	// UBILayers is a file of certified UBI layer IDs for BasedOnUbi.
	UBILayers string
	// Preflight names an installed preflight binary to certify with instead of the
	// native checks.
	Preflight string
	// GraphURL and Channels, when set, take OpenShift releases from the update graph
	// instead of the rehearsal sample list.
	GraphURL string
	Channels []string
	// GitHub uses GitHub (token in $GITHUB_TOKEN) for the Dockerfile, the release table,
	// issues and the driver tags instead of the local forge.
	GitHub       bool
	GitHubAPIURL string
	TableByPR    bool
	// I915Repo and FirmwareRepo are the driver repositories whose tags are watched.
	I915Repo     string
	FirmwareRepo string
	// Cluster, when set, builds, tests and debugs on an OpenShift cluster instead of the
	// rehearsal stand-ins.
	Cluster *ClusterOptions
}

// ClusterOptions configure the cluster backends.
type ClusterOptions struct {
	Kubeconfig     string // "" : $KUBECONFIG, ~/.kube/config, or in-cluster
	BuildNamespace string
	GitURI         string // the project repository OpenShift Builds clone
	PushSecret     string
	TestNamespace  string
	Canary         string // canary node selector
	TestImage      string
	TestCommand    []string
	DebugNamespace string
}

// Default driver repositories.
const (
	DefaultI915Repo     = "intel-gpu/intel-gpu-i915-backports"
	DefaultFirmwareRepo = "intel-gpu/intel-gpu-firmware"
)

// Set is every activity struct, ready to register, plus the local backends for callers
// that want to look at them.
type Set struct {
	Config    activities.Config
	Resolver  *activities.Resolver
	Builds    *activities.Builds
	GPUTests  *activities.GPUTests
	Certifier *activities.Certifier
	Publisher *activities.Publisher
	Tables    *activities.Tables
	Issues    *activities.Issues
	Debug     *activities.Debug
	Watch     *activities.Watch

	Kernels ocp.Source
	Forge   *forge.Local
	Catalog *catalog.Local

	standIns []string
}

// Rehearsal wires the embedded default: real registry, real certification checks, local
// catalog and forge, and the rehearsal stand-ins for build, GPU test and debug workload.
func Rehearsal(ctx context.Context, o Options) (*Set, error) {
	if o.ProjectRepo == "" {
		o.ProjectRepo = DefaultProjectRepo
	}
	if o.DriverRepo == "" {
		o.DriverRepo = DefaultDriverRepo
	}
	if o.Policy == "" {
		o.Policy = certify.PolicyRoot
	}
	if _, err := certify.ParsePolicy(string(o.Policy)); err != nil {
		return nil, err
	}
	if o.I915Repo == "" {
		o.I915Repo = DefaultI915Repo
	}
	if o.FirmwareRepo == "" {
		o.FirmwareRepo = DefaultFirmwareRepo
	}
	reg := registry.NewClient()
	var kernels ocp.Source
	if o.GraphURL != "" {
		for _, ch := range o.Channels {
			if err := ocp.ValidateChannel(ch); err != nil {
				return nil, err
			}
		}
		kernels = &ocp.Graph{URL: o.GraphURL, Channels: o.Channels, Images: reg, CacheFile: filepath.Join(o.StateDir, "kernels-by-payload.json")}
	} else {
		seeded, err := ocp.SeedRehearsal(ctx, reg, o.RegistryHost)
		if err != nil {
			return nil, err
		}
		kernels = seeded
	}
	local, err := forge.NewLocal(ctx, filepath.Join(o.StateDir, "forge"), o.ProjectRepo)
	if err != nil {
		return nil, err
	}
	pinned, err := docker.Parse(docker.DriverDockerfile)
	if err != nil {
		return nil, err
	}
	i915, fw, _ := pinned.PinnedDriver()
	if err := local.SeedTags(o.I915Repo, i915); err != nil {
		return nil, err
	}
	if err := local.SeedTags(o.FirmwareRepo, fw); err != nil {
		return nil, err
	}
	var fg forge.Forge = local
	var drivers activities.DriverForge = local
	if o.GitHub {
		gh, err := forge.NewGitHub(forge.GitHubConfig{ProjectRepo: o.ProjectRepo, APIURL: o.GitHubAPIURL, TableByPullRequest: o.TableByPR})
		if err != nil {
			return nil, err
		}
		fg, drivers = gh, gh
	}
	localCat, err := catalog.NewLocal(filepath.Join(o.StateDir, "catalog"))
	if err != nil {
		return nil, err
	}
	var cat catalog.Catalog = localCat
	var ubi certify.UBISource
	if o.CatalogProject != "" {
		api, err := catalog.NewAPI(catalog.APIConfig{BaseURL: o.CatalogURL, ProjectID: o.CatalogProject})
		if err != nil {
			return nil, err
		}
		cat, ubi = api, catalog.UBILayers{API: api}
	}
	switch {
	case o.UBILayers != "":
		ubi = certify.ListFile{Path: o.UBILayers}
	case ubi == nil:
		ubiList := filepath.Join(o.StateDir, "certified-ubi-layers.txt")
		if err := rehearsal.WriteUBIList(ubiList); err != nil {
			return nil, err
		}
		ubi = certify.ListFile{Path: ubiList, Note: "rehearsal stand-in"}
	}
	var pf *certify.Preflight
	if o.Preflight != "" {
		pf = &certify.Preflight{Binary: o.Preflight}
		if !pf.Available() {
			return nil, fmt.Errorf("--preflight %q: no such executable (install openshift-preflight, or leave the flag out for the native checks)", o.Preflight)
		}
	}
	cfg := activities.Config{
		StagingRepo: o.RegistryHost + "/" + StagingPath,
		ReleaseRepo: o.RegistryHost + "/" + ReleasePath,
		ProjectRepo: o.ProjectRepo, DriverRepo: o.DriverRepo, Policy: o.Policy,
	}
	var (
		builder  activities.Builder       = &rehearsal.Builder{Registry: reg}
		tester   activities.Tester        = &rehearsal.Tester{Registry: reg}
		deployer activities.DebugDeployer = &rehearsal.Debug{Dir: filepath.Join(o.StateDir, "debug")}
	)
	if co := o.Cluster; co != nil {
		rc, err := cluster.RESTConfig(co.Kubeconfig)
		if err != nil {
			return nil, err
		}
		cl, err := cluster.New(rc)
		if err != nil {
			return nil, err
		}
		if err := cl.RequireAPIs(ctx, cluster.BuildGVR, cluster.ModuleGVR); err != nil {
			return nil, err
		}
		if co.GitURI == "" {
			return nil, &release.FieldError{Field: "--git-uri", Accepted: "the project repository the OpenShift Build clones, such as https://github.com/intel/intel-data-center-gpu-driver-for-openshift.git"}
		}
		kernels = ocp.Union{kernels, cluster.KernelSource{C: cl, Images: reg}}
		builder = &cluster.Builder{C: cl, Cfg: cluster.BuilderConfig{Namespace: co.BuildNamespace, GitURI: co.GitURI, PushSecret: co.PushSecret}}
		tester = &cluster.Tester{C: cl, Cfg: cluster.TesterConfig{Namespace: co.TestNamespace, CanarySelector: co.Canary, Image: co.TestImage, Command: co.TestCommand}}
		deployer = &cluster.Debug{C: cl, Namespace: co.DebugNamespace}
	}
	var standIns []string
	if o.GraphURL == "" {
		standIns = append(standIns, ocp.StandInNote)
	}
	if o.Cluster == nil {
		standIns = append(standIns, rehearsal.BuildNote, rehearsal.BaseNote, rehearsal.TestNote, rehearsal.DebugNote)
	}
	if o.CatalogProject == "" {
		standIns = append(standIns, catalog.LocalStandInNote)
	}
	if !o.GitHub {
		standIns = append(standIns, forge.LocalStandInNote)
	}
	return &Set{
		standIns:  standIns,
		Config:    cfg,
		Resolver:  &activities.Resolver{Kernels: kernels, Forge: fg, Registry: reg, Catalog: cat, Config: cfg},
		Builds:    &activities.Builds{Builder: builder, Forge: fg, Config: cfg},
		GPUTests:  &activities.GPUTests{Tester: tester},
		Certifier: &activities.Certifier{Registry: reg, Config: cfg, UBI: ubi, Preflight: pf},
		Publisher: &activities.Publisher{Registry: reg, Catalog: cat, Config: cfg},
		Tables:    &activities.Tables{Forge: fg},
		Issues:    &activities.Issues{Forge: fg, Config: cfg},
		Debug:     &activities.Debug{Deployer: deployer},
		Watch:     &activities.Watch{Kernels: kernels, Forge: fg, Drivers: drivers, Registry: reg, Config: cfg, I915Repo: o.I915Repo, FirmwareRepo: o.FirmwareRepo},
		Kernels:   kernels,
		Forge:     local,
		Catalog:   localCat,
	}, nil
}

// StandIns lists what the set does not do for real, for the programs to print.
func (s *Set) StandIns() []string { return s.standIns }

// Register registers the workflows and every activity on a worker.
func (s *Set) Register(w worker.Registry) {
	for _, wf := range []any{workflows.Release, workflows.Matrix, workflows.KernelWatch, workflows.DriverWatch} {
		w.RegisterWorkflow(wf)
	}
	for _, a := range []any{s.Resolver, s.Builds, s.GPUTests, s.Certifier, s.Publisher, s.Tables, s.Issues, s.Debug, s.Watch} {
		w.RegisterActivity(a)
	}
}

// Describe is a short account of where images go.
func (s *Set) Describe() string {
	return fmt.Sprintf("staging %s, release %s, policy %s", s.Config.StagingRepo, s.Config.ReleaseRepo, s.Config.Policy)
}
