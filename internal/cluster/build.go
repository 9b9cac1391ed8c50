package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"dgpu-release/docker"
	"dgpu-release/internal/release"
)

// BuilderConfig says where builds run and what they build from.
type BuilderConfig struct {
	Namespace string
	// GitURI is the project repository the build clones; the Dockerfile is built at the
	// commit the release resolved.
	GitURI string
	// PushSecret names the secret with credentials for the staging repository.
	PushSecret string
	// Poll is how often progress is reported while the watch is quiet (default 30s).
	Poll time.Duration
}

// Builder runs OpenShift Builds (Docker strategy) for the driver image.
type Builder struct {
	C   *Client
	Cfg BuilderConfig
}

// Build phases that end a build.
var buildDone = map[string]bool{"Complete": true, "Failed": true, "Error": true, "Cancelled": true}

// BuildObject renders the Build for a spec; its name is the spec's deterministic name.
func (b *Builder) BuildObject(spec release.BuildSpec) *unstructured.Unstructured {
	names := make([]string, 0, len(spec.Args))
	for k := range spec.Args {
		names = append(names, k)
	}
	sort.Strings(names)
	var args []any
	for _, k := range names {
		args = append(args, map[string]any{"name": k, "value": spec.Args[k]})
	}
	output := map[string]any{
		"to":          map[string]any{"kind": "DockerImage", "name": spec.StagingRepo + ":" + spec.Tag},
		"imageLabels": []any{map[string]any{"name": release.LabelBuildKey, "value": string(spec.BuildKey)}},
	}
	if b.Cfg.PushSecret != "" {
		output["pushSecret"] = map[string]any{"name": b.Cfg.PushSecret}
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "build.openshift.io/v1",
		"kind":       "Build",
		"metadata": map[string]any{
			"name":      spec.Name,
			"namespace": b.Cfg.Namespace,
			"labels":    map[string]any{"app.kubernetes.io/part-of": "dgpu-release", "dgpu-release/build-key": spec.BuildKey.Short()},
			"annotations": map[string]any{
				"dgpu-release/workflow-id": spec.WorkflowID,
				"dgpu-release/round":       fmt.Sprint(spec.Round),
			},
		},
		"spec": map[string]any{
			"source": map[string]any{"type": "Git", "git": map[string]any{"uri": b.Cfg.GitURI, "ref": spec.DockerfileCommit}},
			"strategy": map[string]any{"type": "Docker", "dockerStrategy": map[string]any{
				"dockerfilePath": docker.DriverDockerfilePath,
				"buildArgs":      args,
				"noCache":        true,
			}},
			"output": output,
		},
	}}
}

// Build creates the Build (or finds the one a previous attempt created), watches it to
// the end, and returns the pushed digest, or the log tail as evidence of a failure.
func (b *Builder) Build(ctx context.Context, spec release.BuildSpec, progress release.Progress) (release.BuildOutput, error) {
	res := b.C.Dynamic.Resource(BuildGVR).Namespace(b.Cfg.Namespace)
	obj, err := res.Create(ctx, b.BuildObject(spec), metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		obj, err = res.Get(ctx, spec.Name, metav1.GetOptions{})
		progress("found build " + spec.Name + " from an earlier attempt")
	} else if err == nil {
		progress("created build " + spec.Name)
	}
	if err != nil {
		return release.BuildOutput{}, fmt.Errorf("build %s/%s: %w", b.Cfg.Namespace, spec.Name, err)
	}
	obj, err = b.waitDone(ctx, obj, progress)
	if err != nil {
		return release.BuildOutput{}, err
	}
	phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
	ev := release.Evidence{Step: release.StepBuild, Details: map[string]string{"build": b.Cfg.Namespace + "/" + spec.Name, "dockerfile_commit": spec.DockerfileCommit}}
	if phase != "Complete" {
		msg, _, _ := unstructured.NestedString(obj.Object, "status", "message")
		reason, _, _ := unstructured.NestedString(obj.Object, "status", "reason")
		ev.Summary = fmt.Sprintf("build %s ended %s: %s", spec.Name, phase, strings.TrimSpace(reason+" "+msg))
		ev.LogTail = b.logTail(ctx, obj)
		return release.BuildOutput{}, &release.StepFailure{Evidence: ev}
	}
	digest, _, _ := unstructured.NestedString(obj.Object, "status", "output", "to", "imageDigest")
	if !strings.HasPrefix(digest, "sha256:") {
		return release.BuildOutput{}, fmt.Errorf("build %s completed without status.output.to.imageDigest", spec.Name)
	}
	ev.Summary = fmt.Sprintf("OpenShift build %s pushed %s@%s", spec.Name, spec.StagingRepo, digest)
	ev.Details["digest"] = digest
	return release.BuildOutput{Image: release.Image{Repository: spec.StagingRepo, Tag: spec.Tag, Digest: digest}, Evidence: ev}, nil
}

// waitDone watches the build until its phase ends, reporting progress on every change
// and at least every Poll while the watch is quiet.
func (b *Builder) waitDone(ctx context.Context, obj *unstructured.Unstructured, progress release.Progress) (*unstructured.Unstructured, error) {
	res := b.C.Dynamic.Resource(BuildGVR).Namespace(b.Cfg.Namespace)
	poll := b.Cfg.Poll
	if poll <= 0 {
		poll = 30 * time.Second
	}
	name := obj.GetName()
	last := ""
	for {
		phase, _, _ := unstructured.NestedString(obj.Object, "status", "phase")
		if buildDone[phase] {
			return obj, nil
		}
		if phase != last {
			progress(fmt.Sprintf("build %s: %s", name, orNew(phase)))
			last = phase
		}
		w, err := res.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name, ResourceVersion: obj.GetResourceVersion()})
		if err != nil {
			return nil, fmt.Errorf("watch build %s: %w", name, err)
		}
		timer := time.NewTimer(poll)
		changed := false
		for !changed {
			select {
			case <-ctx.Done():
				w.Stop()
				timer.Stop()
				return nil, ctx.Err()
			case <-timer.C:
				progress(fmt.Sprintf("build %s: %s", name, orNew(last)))
				timer.Reset(poll)
			case e, ok := <-w.ResultChan():
				if !ok {
					changed = true // the watch ended: read the object again and watch anew
					fresh, err := res.Get(ctx, name, metav1.GetOptions{})
					if err != nil {
						w.Stop()
						timer.Stop()
						return nil, fmt.Errorf("read build %s: %w", name, err)
					}
					obj = fresh
					break
				}
				switch e.Type {
				case watch.Modified, watch.Added:
					if u, ok := e.Object.(*unstructured.Unstructured); ok {
						obj, changed = u, true
					}
				case watch.Deleted:
					w.Stop()
					timer.Stop()
					return nil, fmt.Errorf("build %s was deleted while it ran", name)
				}
			}
		}
		w.Stop()
		timer.Stop()
	}
}

func orNew(phase string) string {
	if phase == "" {
		return "New"
	}
	return phase
}

// logTail is the build's log: its status.logSnippet, or the tail of the build log
// subresource where the API serves it.
func (b *Builder) logTail(ctx context.Context, obj *unstructured.Unstructured) string {
	if s, _, _ := unstructured.NestedString(obj.Object, "status", "logSnippet"); s != "" {
		return s
	}
	raw, err := b.C.Kube.CoreV1().RESTClient().Get().AbsPath("/apis/build.openshift.io/v1/namespaces", b.Cfg.Namespace, "builds", obj.GetName(), "log").DoRaw(ctx)
	if err != nil {
		return fmt.Sprintf("(no build log: %v)", err)
	}
	return tailLines(string(raw), 50)
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
