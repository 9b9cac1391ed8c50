package kubetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// GPUResource is what the Intel GPU device plugin advertises.
const GPUResource = "gpu.intel.com/i915"

// AddNode creates a kwok-managed node with the kernel, labels and GPU count, and sets
// its status as a kubelet would (through kwok's concurrent updates).
func (c *Cluster) AddNode(t testing.TB, name, kernel string, labels map[string]string, gpus int64) {
	t.Helper()
	ctx := context.Background()
	k := kubernetes.NewForConfigOrDie(c.Config)
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}, Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"}}}
	for key, v := range labels {
		n.Labels[key] = v
	}
	if _, err := k.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("128Gi"), corev1.ResourcePods: resource.MustParse("110")}
	if gpus > 0 {
		res[GPUResource] = *resource.NewQuantity(gpus, resource.DecimalSI)
	}
	// kwok initializes the node from the object it last saw, which may predate the status
	// set here: set it until the node is Ready with this kernel (kwok touches nodeInfo
	// only while initializing).
	deadline := time.Now().Add(60 * time.Second)
	for {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := k.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.Status.NodeInfo.KernelVersion == kernel && len(cur.Status.Capacity) > 0 {
				return nil
			}
			cur.Status.Capacity, cur.Status.Allocatable = res, res
			cur.Status.NodeInfo = corev1.NodeSystemInfo{KernelVersion: kernel, OSImage: "Red Hat Enterprise Linux CoreOS", Architecture: "amd64", OperatingSystem: "linux"}
			_, err = k.CoreV1().Nodes().UpdateStatus(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatalf("node %s status: %v", name, err)
		}
		cur, err := k.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("node %s: %v", name, err)
		}
		ready := false
		for _, cond := range cur.Status.Conditions {
			ready = ready || (cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue)
		}
		if ready && cur.Status.NodeInfo.KernelVersion == kernel {
			if _, ok := cur.Status.Allocatable[GPUResource]; ok || gpus == 0 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s did not become Ready with kernel %s", name, kernel)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Namespace creates a namespace if it is missing.
func (c *Cluster) Namespace(t testing.TB, name string) {
	t.Helper()
	k := kubernetes.NewForConfigOrDie(c.Config)
	_, err := k.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// ContainerLog sets what kwok serves as the log of containers with that name.
func (c *Cluster) ContainerLog(t testing.TB, container string, lines ...string) {
	t.Helper()
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "%s stdout F %s\n", time.Now().UTC().Format(time.RFC3339Nano), l)
	}
	if err := os.WriteFile(filepath.Join(c.LogsDir, container+".log"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}
