// Pieces of the adaptive resampler OpKernels that depend on the device type.

#ifndef CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_OP_H_
#define CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_OP_H_

#define EIGEN_USE_THREADS

#include "custom_ops/cc/kernels/adaptive_resample.h"
#include "tensorflow/core/framework/tensor.h"
#include "unsupported/Eigen/CXX11/Tensor"
#if GOOGLE_CUDA
#include "tensorflow/core/util/determinism.h"
#endif

namespace car_tf {

// Checks ranks, shapes, the square tap count and that reflection padding is
// possible; fills `shape`. An empty output is valid and returns OK.
absl::Status ValidateResampleInputs(const ::tensorflow::Tensor& image,
                                    const ::tensorflow::Tensor& kernels,
                                    const ::tensorflow::Tensor& offsets_x,
                                    const ::tensorflow::Tensor& offsets_y,
                                    float offset_unit, ResampleShape* shape);

// The CPU backward pass is deterministic by construction. Devices whose image
// gradient uses atomics specialise this to refuse when TF op determinism is
// required.
template <typename Device>
absl::Status CheckBackwardDeterminism() {
  return absl::OkStatus();
}

#if GOOGLE_CUDA
// The GPU image gradient sums with atomicAdd, whose rounding depends on thread
// order. Same error class and wording as TF's own nondeterministic GPU ops.
template <>
inline absl::Status CheckBackwardDeterminism<Eigen::GpuDevice>() {
  if (::tensorflow::OpDeterminismRequired()) {
    return absl::UnimplementedError(
        "A deterministic GPU implementation of AdaptiveResampleGrad is not "
        "available (its image gradient uses atomicAdd). Run the op on CPU, use "
        "impl=\"composite\", or disable op determinism.");
  }
  return absl::OkStatus();
}
#endif  // GOOGLE_CUDA

}  // namespace car_tf

#endif  // CAR_TF_CUSTOM_OPS_CC_KERNELS_ADAPTIVE_RESAMPLE_OP_H_
