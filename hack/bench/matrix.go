package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"

	"dgpu-release/activities"
	"dgpu-release/docker"
	"dgpu-release/internal/devstack"
	"dgpu-release/internal/ocp"
	"dgpu-release/internal/registry"
	"dgpu-release/internal/release"
	"dgpu-release/internal/wiring"
	"dgpu-release/workflows"
)

func init() {
	register(section{Name: "matrix", Order: 20, Title: "Matrix: a driver upgrade over 50 kernels, 45 already released", Run: benchMatrix})
}

const (
	matrixKernels  = 50
	matrixReleased = 45
	matrixInFlight = 10
)

// countingBuilder counts the builds that really run.
type countingBuilder struct {
	activities.Builder
	n atomic.Int64
}

func (b *countingBuilder) Build(ctx context.Context, spec release.BuildSpec, p release.Progress) (release.BuildOutput, error) {
	b.n.Add(1)
	return b.Builder.Build(ctx, spec, p)
}

func benchMatrix(ctx context.Context, e *env) (string, error) {
	state := filepath.Join(e.Dir, "matrix-state")
	fmt.Fprintln(e.Log, "matrix: starting the embedded stack in", state)
	stack, err := devstack.Start(ctx, devstack.Config{StateDir: state, NoUI: true})
	if err != nil {
		return "", err
	}
	defer stack.Stop()
	set, err := wiring.Rehearsal(ctx, wiring.Options{StateDir: state, RegistryHost: stack.RegistryHost})
	if err != nil {
		return "", err
	}
	// 50 OpenShift releases, each with its own kernel and stand-in Driver Toolkit image.
	reg := registry.NewClient()
	var kernels ocp.StaticSource
	var targets []release.KernelTarget
	for i := 0; i < matrixKernels; i++ {
		r := ocp.DTKRelease{OpenShift: fmt.Sprintf("4.16.%d", 100+i), KernelVersion: fmt.Sprintf("5.14.0-427.%d.1.el9_4.x86_64", 100+i), RHELVersion: "9.4"}
		img, err := ocp.DTKStandIn(r)
		if err != nil {
			return "", err
		}
		repo := stack.RegistryHost + "/openshift/driver-toolkit"
		d, err := reg.Push(ctx, img, repo+":"+r.OpenShift)
		if err != nil {
			return "", err
		}
		kernels = append(kernels, ocp.Release{OpenShift: r.OpenShift, Kernel: r.KernelVersion, RHELVersion: r.RHELVersion, DTKImage: repo + "@" + d})
		targets = append(targets, release.KernelTarget{Kernel: r.KernelVersion, OpenShiftVersion: r.OpenShift})
	}
	set.Resolver.Kernels, set.Watch.Kernels = kernels, kernels
	builds := &countingBuilder{Builder: set.Builds.Builder}
	set.Builds.Builder = builds

	c, err := client.DialContext(ctx, client.Options{HostPort: stack.TemporalAddress, Namespace: stack.Namespace, Logger: quietLogger()})
	if err != nil {
		return "", err
	}
	defer c.Close()
	w := worker.New(c, release.TaskQueue, worker.Options{})
	set.Register(w)
	if err := w.Start(); err != nil {
		return "", err
	}
	defer w.Stop()

	df, err := docker.Parse(docker.DriverDockerfile)
	if err != nil {
		return "", err
	}
	i915, fw, ver := df.PinnedDriver()
	driver := release.DriverSet{I915Tag: i915, FirmwareTag: fw, DriverVersion: ver}
	matrix := func(n int) (release.MatrixReport, time.Duration, error) {
		start := time.Now()
		run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: release.MatrixID(ver), TaskQueue: release.TaskQueue}, workflows.Matrix,
			release.MatrixRequest{Trigger: release.TriggerDriver, Driver: driver, DockerfileRef: "main", Targets: targets[:n], MaxInFlight: matrixInFlight})
		if err != nil {
			return release.MatrixReport{}, 0, err
		}
		var rep release.MatrixReport
		err = run.Get(ctx, &rep)
		return rep, time.Since(start), err
	}

	fmt.Fprintf(e.Log, "matrix: releasing %d of %d kernels first (real rehearsal builds, certification, publish)\n", matrixReleased, matrixKernels)
	setupRep, setupWall, err := matrix(matrixReleased)
	if err != nil {
		return "", err
	}
	setupBuilds := builds.n.Load()
	fmt.Fprintf(e.Log, "matrix: %d releases in %s (%d builds); now the upgrade over all %d\n", matrixReleased, setupWall.Round(time.Millisecond), setupBuilds, matrixKernels)
	builds.n.Store(0)
	rep, wall, err := matrix(matrixKernels)
	if err != nil {
		return "", err
	}
	n := builds.n.Load()
	fmt.Fprintf(e.Log, "matrix: %d kernels in %s, %d builds\n", matrixKernels, wall.Round(time.Millisecond), n)

	var b strings.Builder
	fmt.Fprintf(&b, "The embedded default (Temporal, registry, local forge and catalog) with the rehearsal build stand-in and the real "+
		"certification checks and publish. %d OpenShift releases, each with its own kernel and stand-in Driver Toolkit image; "+
		"the first %d are released by a first matrix, then the driver upgrade runs over all %d with at most %d releases in flight.\n\n",
		matrixKernels, matrixReleased, matrixKernels, matrixInFlight)
	b.WriteString("| run | kernels | builds | wall | outcomes |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| setup: first release of %d kernels | %d | %d | %s | %s |\n", matrixReleased, matrixReleased, setupBuilds, setupWall.Round(time.Millisecond), counts(setupRep))
	fmt.Fprintf(&b, "| **upgrade over %d, %d already released** | %d | **%d** | **%s** | %s |\n", matrixKernels, matrixReleased, matrixKernels, n, wall.Round(time.Millisecond), counts(rep))
	verdict := "exactly the 5 unreleased kernels were built"
	if n != matrixKernels-matrixReleased {
		verdict = fmt.Sprintf("UNEXPECTED: %d builds where %d were due", n, matrixKernels-matrixReleased)
	}
	fmt.Fprintf(&b, "\nBuilds are counted by a wrapper around the build port, so a build that ran is counted whatever its outcome: %s. "+
		"The %d already-released kernels each still run a Release child that stops at resolve (the published tag carries the same build key).\n", verdict, matrixReleased)
	return b.String(), nil
}

func counts(r release.MatrixReport) string {
	var parts []string
	for k, v := range r.Counts {
		parts = append(parts, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}
