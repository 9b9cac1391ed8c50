package cluster

import (
	"sigs.k8s.io/yaml"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"dgpu-release/docker"
	"dgpu-release/internal/release"
)

// KernelVar is what KMM substitutes with each node's kernel in a kernel mapping.
const KernelVar = "${KERNEL_FULL_VERSION}"

// ReleasedModule is the KMM Module that loads released images (pre-build mode): every
// RHCOS kernel maps to <repo>:<driver-version>-${KERNEL_FULL_VERSION}. It is ModuleObject,
// the Module the GPU test uses, with a regexp mapping instead of one literal kernel.
func ReleasedModule(namespace, repo, driverVersion string, selector map[string]string) *unstructured.Unstructured {
	m := ModuleObject("intel-dgpu", namespace, "", repo+":"+release.ImageTag(driverVersion, KernelVar), selector)
	mapping := map[string]any{"regexp": `^.*\.el[0-9_]+\.x86_64$`, "containerImage": repo + ":" + release.ImageTag(driverVersion, KernelVar)}
	_ = unstructured.SetNestedSlice(m.Object, []any{mapping}, "spec", "moduleLoader", "container", "kernelMappings")
	return m
}

// OnPremisesModule is the KMM Module that builds the image on the cluster (build mode):
// the Dockerfile comes from a ConfigMap, the driver tags are build args, and the result is
// pushed to <repo>:<driver-version>-${KERNEL_FULL_VERSION}.
func OnPremisesModule(namespace, repo string, d release.DriverSet, selector map[string]string) (*unstructured.Unstructured, *unstructured.Unstructured) {
	m := ReleasedModule(namespace, repo, d.DriverVersion, selector)
	m.SetName("intel-dgpu-build")
	build := map[string]any{
		"dockerfileConfigMap": map[string]any{"name": "intel-dgpu-dockerfile"},
		"buildArgs": []any{
			map[string]any{"name": release.ArgI915, "value": d.I915Tag},
			map[string]any{"name": release.ArgFirmware, "value": d.FirmwareTag},
			map[string]any{"name": release.ArgDriverVersion, "value": d.DriverVersion},
		},
	}
	maps, _, _ := unstructured.NestedSlice(m.Object, "spec", "moduleLoader", "container", "kernelMappings")
	maps[0].(map[string]any)["build"] = build
	_ = unstructured.SetNestedSlice(m.Object, maps, "spec", "moduleLoader", "container", "kernelMappings")
	cm := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": "intel-dgpu-dockerfile", "namespace": namespace},
		"data":     map[string]any{"dockerfile": string(docker.DriverDockerfile)},
	}}
	return m, cm
}

// ToYAML renders objects as one YAML stream.
func ToYAML(objs ...*unstructured.Unstructured) ([]byte, error) {
	var out []byte
	for i, o := range objs {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			out = append(out, "---\n"...)
		}
		out = append(out, b...)
	}
	return out, nil
}
