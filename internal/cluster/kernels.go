package cluster

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"dgpu-release/internal/ocp"
	"dgpu-release/internal/release"
)

// DefaultGPUNodeSelector selects the nodes Node Feature Discovery labels as Intel GPU nodes.
const DefaultGPUNodeSelector = "intel.feature.node.kubernetes.io/gpu=true"

// NodeKernel is a kernel that GPU nodes run.
type NodeKernel struct {
	Kernel string   `json:"kernel"`
	Nodes  []string `json:"nodes"`
}

// GPUNodeKernels lists the kernels of the nodes the selector picks, with their nodes.
func (c *Client) GPUNodeKernels(ctx context.Context, selector string) ([]NodeKernel, error) {
	if selector == "" {
		selector = DefaultGPUNodeSelector
	}
	nodes, err := c.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list nodes %s: %w", selector, err)
	}
	by := map[string][]string{}
	for _, n := range nodes.Items {
		k := n.Status.NodeInfo.KernelVersion
		if release.ValidateKernel("kernel", k) != nil {
			continue // not a RHCOS/RHEL kernel: not ours to build for
		}
		by[k] = append(by[k], n.Name)
	}
	out := make([]NodeKernel, 0, len(by))
	for k, ns := range by {
		sort.Strings(ns)
		out = append(out, NodeKernel{Kernel: k, Nodes: ns})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Kernel < out[j].Kernel })
	return out, nil
}

// ClusterVersion is the cluster's OpenShift version: the desired one, and the history,
// with their release payload images.
type ClusterVersion struct {
	Desired      string   `json:"desired"`
	DesiredImage string   `json:"desired_image,omitempty"`
	History      []string `json:"history"`
}

// OpenShiftVersion reads clusterversions.config.openshift.io/version.
func (c *Client) OpenShiftVersion(ctx context.Context) (ClusterVersion, error) {
	u, err := c.Dynamic.Resource(ClusterVersionGVR).Get(ctx, "version", metav1.GetOptions{})
	if err != nil {
		return ClusterVersion{}, fmt.Errorf("read clusterversion/version: %w", err)
	}
	var cv ClusterVersion
	cv.Desired, _, _ = unstructured.NestedString(u.Object, "status", "desired", "version")
	cv.DesiredImage, _, _ = unstructured.NestedString(u.Object, "status", "desired", "image")
	hist, _, _ := unstructured.NestedSlice(u.Object, "status", "history")
	for _, h := range hist {
		if m, ok := h.(map[string]any); ok {
			if v, ok := m["version"].(string); ok {
				cv.History = append(cv.History, v)
			}
		}
	}
	if cv.Desired == "" {
		return cv, fmt.Errorf("clusterversion/version has no status.desired.version")
	}
	return cv, nil
}

// KernelSource is the cluster as a kernel source: the OpenShift release it runs (its
// ClusterVersion's desired payload), whose Driver Toolkit gives the kernel its nodes run
// once upgraded.
type KernelSource struct {
	C      *Client
	Images ocp.ImageReader
}

// Releases reads the ClusterVersion and its payload. A cluster without a ClusterVersion
// (not OpenShift, or not yet installed) adds no release.
func (k KernelSource) Releases(ctx context.Context) ([]ocp.Release, error) {
	cv, err := k.C.OpenShiftVersion(ctx)
	if apierrors.IsNotFound(err) || meta.IsNoMatchError(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if cv.DesiredImage == "" {
		return nil, fmt.Errorf("clusterversion/version names no desired release image")
	}
	r, err := ocp.ReleaseFromPayload(ctx, k.Images, cv.Desired, cv.DesiredImage)
	if err != nil {
		return nil, fmt.Errorf("the cluster's OpenShift %s: %w", cv.Desired, err)
	}
	return []ocp.Release{r}, nil
}
