package cluster

import (
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"

	"dgpu-release/internal/release"
)

// GPU resource and module facts.
const (
	GPUResource     = "gpu.intel.com/i915"
	ModuleName      = "i915"
	FirmwarePath    = "/firmware"
	DefaultCanary   = "dgpu-release/canary=true"
	DefaultTestImg  = "registry.access.redhat.com/ubi9/ubi-minimal:latest"
	DefaultTestPass = `Number of platforms\s+[1-9]`
)

// InTreeModulesToRemove are unloaded before the out-of-tree i915 loads.
var InTreeModulesToRemove = []string{"i915", "intel_vsec", "mei_gsc", "mei_me"}

// DefaultTestCommand runs clinfo.
var DefaultTestCommand = []string{"clinfo"}

// TesterConfig configures the GPU test.
type TesterConfig struct {
	Namespace string
	// CanarySelector picks the GPU nodes that load the staged image (default dgpu-release/canary=true).
	CanarySelector string
	// Image and Command run the test tools (default: clinfo).
	Image   string
	Command []string
	// PassPattern must match the test output for a pass (default: clinfo lists a platform).
	PassPattern string
	// ReadyTimeout bounds the wait for KMM to load the module; TestTimeout the Job's run.
	ReadyTimeout, TestTimeout time.Duration
	// Poll is how often the waits check and report progress (default 5s).
	Poll time.Duration
}

func (c TesterConfig) withDefaults() TesterConfig {
	if c.CanarySelector == "" {
		c.CanarySelector = DefaultCanary
	}
	if c.Image == "" {
		c.Image = DefaultTestImg
	}
	if len(c.Command) == 0 {
		c.Command = DefaultTestCommand
	}
	if c.PassPattern == "" {
		c.PassPattern = DefaultTestPass
	}
	if c.ReadyTimeout <= 0 {
		c.ReadyTimeout = 20 * time.Minute
	}
	if c.TestTimeout <= 0 {
		c.TestTimeout = 30 * time.Minute
	}
	if c.Poll <= 0 {
		c.Poll = 5 * time.Second
	}
	return c
}

// Tester loads the staged image with KMM on canary GPU nodes and runs the test Job.
type Tester struct {
	C   *Client
	Cfg TesterConfig
}

// ReadyLabel is the label KMM puts on a node that loaded the module.
func ReadyLabel(namespace, module string) string {
	return "kmm.node.kubernetes.io/" + namespace + "." + module + ".ready"
}

// ModuleObject is the KMM Module that maps the tested kernel to the staged image.
func ModuleObject(name, namespace, kernel, image string, selector map[string]string) *unstructured.Unstructured {
	sel := map[string]any{}
	for k, v := range selector {
		sel[k] = v
	}
	var remove []any
	for _, m := range InTreeModulesToRemove {
		remove = append(remove, m)
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kmm.sigs.x-k8s.io/v1beta1",
		"kind":       "Module",
		"metadata":   map[string]any{"name": name, "namespace": namespace, "labels": map[string]any{"app.kubernetes.io/part-of": "dgpu-release"}},
		"spec": map[string]any{
			"selector": sel,
			"moduleLoader": map[string]any{"container": map[string]any{
				"modprobe":              map[string]any{"moduleName": ModuleName, "firmwarePath": FirmwarePath},
				"inTreeModulesToRemove": remove,
				"imagePullPolicy":       "Always",
				"kernelMappings":        []any{map[string]any{"literal": kernel, "containerImage": image}},
			}},
		},
	}}
}

// Test runs the GPU test and cleans up after itself, also on failure or cancellation.
func (t *Tester) Test(ctx context.Context, spec release.TestSpec, progress release.Progress) (release.TestOutput, error) {
	cfg := t.Cfg.withDefaults()
	sel, err := labels.ConvertSelectorToLabelsMap(cfg.CanarySelector)
	if err != nil {
		return release.TestOutput{}, &release.FieldError{Field: "canary selector", Value: cfg.CanarySelector, Accepted: "key=value[,key=value]"}
	}
	pass, err := regexp.Compile(cfg.PassPattern)
	if err != nil {
		return release.TestOutput{}, &release.FieldError{Field: "pass pattern", Value: cfg.PassPattern, Accepted: "a regular expression"}
	}
	name := spec.Name
	defer t.cleanup(name, progress)

	mods := t.C.Dynamic.Resource(ModuleGVR).Namespace(cfg.Namespace)
	if _, err := mods.Create(ctx, ModuleObject(name, cfg.Namespace, spec.Kernel, spec.Image, sel), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return release.TestOutput{}, fmt.Errorf("create Module %s/%s: %w", cfg.Namespace, name, err)
	}
	progress("Module " + name + " maps " + spec.Kernel + " to " + spec.Image)

	ready := ReadyLabel(cfg.Namespace, name)
	node, err := t.waitReady(ctx, cfg, sel, ready, progress)
	if err != nil {
		return release.TestOutput{}, err
	}
	ev := release.Evidence{Step: release.StepGPUTest, Details: map[string]string{"node": node, "image": spec.Image, "module": cfg.Namespace + "/" + name}}
	if node == "" {
		ev.Summary = fmt.Sprintf("KMM loaded the module on no canary node (%s) within %s", cfg.CanarySelector, cfg.ReadyTimeout)
		return release.TestOutput{}, &release.StepFailure{Evidence: ev}
	}
	progress("module loaded on " + node + "; running the test Job")

	jobs := t.C.Kube.BatchV1().Jobs(cfg.Namespace)
	if _, err := jobs.Create(ctx, t.job(cfg, name, node, ready), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return release.TestOutput{}, fmt.Errorf("create Job %s/%s: %w", cfg.Namespace, name, err)
	}
	succeeded, err := t.waitJob(ctx, cfg, name, progress)
	if err != nil {
		return release.TestOutput{}, err
	}
	logs := t.jobLogs(ctx, cfg.Namespace, name)
	ev.LogTail = tailLines(logs, 60)
	switch {
	case !succeeded:
		ev.Summary = "the GPU test Job failed on " + node
		return release.TestOutput{}, &release.StepFailure{Evidence: ev}
	case !pass.MatchString(logs):
		ev.Summary = fmt.Sprintf("the GPU test on %s exited 0 but its output does not match %q", node, cfg.PassPattern)
		return release.TestOutput{}, &release.StepFailure{Evidence: ev}
	}
	ev.Summary = "GPU test passed on " + node
	return release.TestOutput{Node: node, Evidence: ev}, nil
}

func (t *Tester) job(cfg TesterConfig, name, node, ready string) *batchv1.Job {
	backoff := int32(0)
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: cfg.Namespace, Labels: map[string]string{"app.kubernetes.io/part-of": "dgpu-release"}},
		Spec: batchv1.JobSpec{
			BackoffLimit: &backoff,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"dgpu-release/test": name}},
				Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					NodeSelector:  map[string]string{ready: "", corev1.LabelHostname: node},
					Containers: []corev1.Container{{
						Name: "gpu-test", Image: cfg.Image, Command: cfg.Command,
						Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{GPUResource: resource.MustParse("1")}},
					}},
				},
			},
		},
	}
}

// waitReady waits for a canary node with the ready label; "" when none in time.
func (t *Tester) waitReady(ctx context.Context, cfg TesterConfig, sel map[string]string, ready string, progress release.Progress) (string, error) {
	want := labels.Set(sel).AsSelector().String() + "," + ready
	deadline := time.Now().Add(cfg.ReadyTimeout)
	for {
		nodes, err := t.C.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: want})
		if err != nil {
			return "", fmt.Errorf("list nodes %s: %w", want, err)
		}
		if len(nodes.Items) > 0 {
			return nodes.Items[0].Name, nil
		}
		if time.Now().After(deadline) {
			return "", nil
		}
		progress("waiting for KMM to label a canary node " + ready)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(cfg.Poll):
		}
	}
}

func (t *Tester) waitJob(ctx context.Context, cfg TesterConfig, name string, progress release.Progress) (bool, error) {
	deadline := time.Now().Add(cfg.TestTimeout)
	for {
		j, err := t.C.Kube.BatchV1().Jobs(cfg.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, fmt.Errorf("read Job %s: %w", name, err)
		}
		for _, c := range j.Status.Conditions {
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobSuccessCriteriaMet) {
				return true, nil
			}
			if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobFailed || c.Type == batchv1.JobFailureTarget) {
				return false, nil
			}
		}
		if time.Now().After(deadline) {
			return false, nil
		}
		progress(fmt.Sprintf("test Job %s: %d active, %d succeeded, %d failed", name, j.Status.Active, j.Status.Succeeded, j.Status.Failed))
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(cfg.Poll):
		}
	}
}

func (t *Tester) jobLogs(ctx context.Context, ns, name string) string {
	pods, err := t.C.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "dgpu-release/test=" + name})
	if err != nil || len(pods.Items) == 0 {
		return fmt.Sprintf("(no test pod: %v)", err)
	}
	var b strings.Builder
	for _, p := range pods.Items {
		rc, err := t.C.Kube.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: "gpu-test"}).Stream(ctx)
		if err != nil {
			fmt.Fprintf(&b, "(logs of %s: %v)\n", p.Name, err)
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		b.Write(data)
	}
	return b.String()
}

// cleanup removes the Module and the Job with its pods, on a context of its own so it
// also runs after the activity is cancelled.
func (t *Tester) cleanup(name string, progress release.Progress) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := t.Cfg.Namespace
	fg := metav1.DeletePropagationForeground
	if err := t.C.Kube.BatchV1().Jobs(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &fg}); err != nil && !apierrors.IsNotFound(err) {
		progress("could not delete Job " + name + ": " + err.Error())
	}
	_ = t.C.Kube.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "dgpu-release/test=" + name, FieldSelector: fields.Everything().String()})
	if err := t.C.Dynamic.Resource(ModuleGVR).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		progress("could not delete Module " + name + ": " + err.Error())
	}
}
