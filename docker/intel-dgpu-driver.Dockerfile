# Intel Data Center GPU driver container image for OpenShift, loaded by the Kernel Module
# Management (KMM) operator. One image per RHCOS kernel.
#
# Build args (set by dgpu-release for each release):
#   DTK_AUTO             the Driver Toolkit image of the OpenShift release (by digest)
#   KERNEL_FULL_VERSION  the RHCOS kernel, such as 5.14.0-427.13.1.el9_4.x86_64
#   I915_RELEASE         tag of intel-gpu-i915-backports
#   FIRMWARE_RELEASE     tag of intel-gpu-firmware
#   DRIVER_VERSION       the semantic version this image is released as

# The pinned driver sources: the driver-upgrade flow bumps these three lines in a pull
# request, and a release builds from them unless it is told otherwise.
ARG I915_RELEASE=I915_24WW30.4_803.75_23.10.54_231129.76
ARG FIRMWARE_RELEASE=24WW20.5_881
ARG DRIVER_VERSION=1.2.0

ARG DTK_AUTO=registry.redhat.io/openshift4/driver-toolkit-rhel9:latest
ARG BASE_IMAGE=registry.access.redhat.com/ubi9/ubi-minimal:latest

FROM ${DTK_AUTO} AS builder

ARG KERNEL_FULL_VERSION
ARG I915_RELEASE
ARG FIRMWARE_RELEASE

WORKDIR /build

# i915 backports for the RHEL kernel of this OpenShift release.
RUN git clone --depth 1 --branch ${I915_RELEASE} https://github.com/intel-gpu/intel-gpu-i915-backports.git \
 && cd intel-gpu-i915-backports \
 && install -D COPYING /licenses/i915/COPYING \
 && export LEX=flex YACC=bison \
 && cp defconfigs/i915 .config \
 && make olddefconfig KLIB=/lib/modules/${KERNEL_FULL_VERSION} \
 && make -j$(nproc) KLIB=/lib/modules/${KERNEL_FULL_VERSION} \
 && make modules_install KLIB=/lib/modules/${KERNEL_FULL_VERSION} INSTALL_MOD_PATH=/build/root INSTALL_MOD_DIR=updates

# KMM loads modules from /opt/lib/modules/<kernel>.
RUN mkdir -p /opt/lib/modules/${KERNEL_FULL_VERSION} \
 && cp -r /build/root/lib/modules/${KERNEL_FULL_VERSION}/updates /opt/lib/modules/${KERNEL_FULL_VERSION}/ \
 && cp /lib/modules/${KERNEL_FULL_VERSION}/modules.* /opt/lib/modules/${KERNEL_FULL_VERSION}/ \
 && depmod -b /opt ${KERNEL_FULL_VERSION}

# Firmware for Flex (dg2) and Max (pvc) cards.
RUN git clone --depth 1 --branch ${FIRMWARE_RELEASE} https://github.com/intel-gpu/intel-gpu-firmware.git \
 && install -D intel-gpu-firmware/COPYRIGHT /licenses/firmware/COPYRIGHT \
 && install -D intel-gpu-firmware/LICENSE /licenses/firmware/LICENSE \
 && mkdir -p /firmware/i915 \
 && cp intel-gpu-firmware/firmware/dg2* intel-gpu-firmware/firmware/pvc* /firmware/i915/

FROM ${BASE_IMAGE}

ARG KERNEL_FULL_VERSION
ARG I915_RELEASE
ARG FIRMWARE_RELEASE
ARG DRIVER_VERSION

RUN microdnf install -y kmod && microdnf clean all

COPY --from=builder /licenses/ /licenses/
COPY --from=builder /opt/lib/modules/${KERNEL_FULL_VERSION}/ /opt/lib/modules/${KERNEL_FULL_VERSION}/
COPY --from=builder /firmware/ /firmware/

LABEL name="intel-dgpu-driver" \
      vendor="Intel Corporation" \
      version="${DRIVER_VERSION}" \
      release="${KERNEL_FULL_VERSION}" \
      maintainer="Intel Data Center GPU driver team" \
      summary="Intel Data Center GPU driver for OpenShift" \
      description="Out-of-tree i915 driver (${I915_RELEASE}) and firmware (${FIRMWARE_RELEASE}) for Intel Data Center GPU Flex and Max, built for kernel ${KERNEL_FULL_VERSION} and loaded by KMM" \
      io.k8s.display-name="Intel Data Center GPU driver" \
      io.k8s.description="Intel Data Center GPU driver container image for the Kernel Module Management operator"
