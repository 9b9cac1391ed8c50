// Package cluster is the OpenShift side of a release, with client-go: the kernels that
// GPU nodes run and the cluster's OpenShift version, the OpenShift Build that makes the
// image, the KMM Module and Job of the GPU test, and the debug workload.
//
// Object names are deterministic for a release and round, so a retried activity finds
// the objects its first attempt made instead of making a second set.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The API resources the adapters use.
var (
	BuildGVR          = schema.GroupVersionResource{Group: "build.openshift.io", Version: "v1", Resource: "builds"}
	ModuleGVR         = schema.GroupVersionResource{Group: "kmm.sigs.x-k8s.io", Version: "v1beta1", Resource: "modules"}
	ClusterVersionGVR = schema.GroupVersionResource{Group: "config.openshift.io", Version: "v1", Resource: "clusterversions"}
)

// Client talks to one cluster.
type Client struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Config  *rest.Config
}

// RESTConfig loads the configuration as kubectl does: an explicit kubeconfig file, else
// $KUBECONFIG, else ~/.kube/config, else the in-cluster service account.
func RESTConfig(kubeconfig string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err == nil {
		return cfg, nil
	}
	if kubeconfig == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		return rest.InClusterConfig()
	}
	return nil, fmt.Errorf("kubeconfig: %w (set KUBECONFIG, or run in a cluster)", err)
}

// New connects.
func New(cfg *rest.Config) (*Client, error) {
	k, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	d, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Client{Kube: k, Dynamic: d, Config: cfg}, nil
}

// RequireAPIs checks that the cluster serves the resources, with an error that says what
// is missing and what provides it.
func (c *Client) RequireAPIs(ctx context.Context, gvrs ...schema.GroupVersionResource) error {
	var errs []error
	for _, gvr := range gvrs {
		list, err := c.Kube.Discovery().ServerResourcesForGroupVersion(gvr.GroupVersion().String())
		found := false
		if err == nil {
			for _, r := range list.APIResources {
				found = found || r.Name == gvr.Resource
			}
		} else if !apierrors.IsNotFound(err) {
			return fmt.Errorf("discover %s: %w", gvr.GroupVersion(), err)
		}
		if !found {
			errs = append(errs, fmt.Errorf("the cluster does not serve %s %s: %s", gvr.GroupVersion(), gvr.Resource, provider(gvr)))
		}
	}
	return errors.Join(errs...)
}

func provider(gvr schema.GroupVersionResource) string {
	switch gvr.Group {
	case BuildGVR.Group:
		return "OpenShift Builds are needed (is this an OpenShift cluster with the Build capability?)"
	case ModuleGVR.Group:
		return "install the Kernel Module Management (KMM) operator"
	case ClusterVersionGVR.Group:
		return "this is not an OpenShift cluster"
	}
	return "missing API"
}
