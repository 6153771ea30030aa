// GPU functors of the adaptive resampler: the AdaptiveResampleForward /
// AdaptiveResampleBackward specialisations for Eigen::GpuDevice that the
// OpKernels in adaptive_resample_op.cc call. The kernels themselves live in
// adaptive_resample_gpu.cu.h, shared with the standalone harness.

#if GOOGLE_CUDA

#define EIGEN_USE_GPU

#include <cuda_runtime.h>

#include <cstdio>

#include "custom_ops/cc/kernels/adaptive_resample.h"
#include "tensorflow/core/framework/tensor_types.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace car_tf {

// Half sums run in float: 11 mantissa bits cannot hold a k*k-tap sum.
template <>
struct AccumulatorType<Eigen::half> {
  using type = float;
};

}  // namespace car_tf

#include "custom_ops/cc/kernels/adaptive_resample_gpu.cu.h"

namespace car_tf {

using GPUDevice = Eigen::GpuDevice;

namespace {

// The OpKernel turns `false` into an Internal error that points at the log,
// so the log line must say what the device said and what to do about it.
bool ReportLaunch(cudaError_t status, const char* what) {
  if (status == cudaSuccess) return true;
  int device = -1, major = 0, minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  std::fprintf(stderr, "car_tf %s: CUDA error %s (%s) on GPU %d (sm_%d%d).",
               what, cudaGetErrorName(status), cudaGetErrorString(status),
               device, major, minor);
  if (status == cudaErrorNoKernelImageForDevice) {
    std::fprintf(stderr,
                 " This build has no code for this GPU: rebuild car_tf with "
                 "CAR_CUDA_ARCHS including %d%d (see docs/CUDA.md).",
                 major, minor);
  }
  std::fprintf(stderr, "\n");
  return false;
}

}  // namespace

template <typename T>
struct AdaptiveResampleForward<GPUDevice, T> {
  bool operator()(const GPUDevice& device, const ResampleShape& shape,
                  const T* image, const T* kernels, const T* offsets_x,
                  const T* offsets_y, T* output) {
    return ReportLaunch(
        gpu::LaunchResampleForward(device.stream(), shape, image, kernels,
                                   offsets_x, offsets_y, output),
        "AdaptiveResample");
  }
};

template <typename T>
struct AdaptiveResampleBackward<GPUDevice, T> {
  bool operator()(const GPUDevice& device, const ResampleShape& shape,
                  const T* image, const T* kernels, const T* offsets_x,
                  const T* offsets_y, const T* grad_output, T* grad_image,
                  T* grad_kernels, T* grad_offsets_x, T* grad_offsets_y) {
    const size_t scratch_bytes = gpu::ImageGradScratchBytes<T>(shape);
    // TF's GpuDevice allocator is stream-ordered: freeing right after the
    // enqueue is safe because later users run on the same stream. On failure
    // it has already set ResourceExhausted on the op.
    void* scratch = nullptr;
    if (scratch_bytes > 0) {
      scratch = device.allocate(scratch_bytes);
      if (scratch == nullptr) return false;
    }
    const cudaError_t status = gpu::LaunchResampleBackward(
        device.stream(), shape, image, kernels, offsets_x, offsets_y,
        grad_output, grad_image, grad_kernels, grad_offsets_x, grad_offsets_y,
        scratch);
    if (scratch != nullptr) device.deallocate(scratch);
    return ReportLaunch(status, "AdaptiveResampleGrad");
  }
};

template struct AdaptiveResampleForward<GPUDevice, Eigen::half>;
template struct AdaptiveResampleForward<GPUDevice, float>;
template struct AdaptiveResampleForward<GPUDevice, double>;
template struct AdaptiveResampleBackward<GPUDevice, Eigen::half>;
template struct AdaptiveResampleBackward<GPUDevice, float>;
template struct AdaptiveResampleBackward<GPUDevice, double>;

}  // namespace car_tf

// AdaptiveResampleGradOp zero-fills empty-output gradients with
// `flat<T>().device(gpu) = flat<T>().constant(0)` in host-compiled code, where
// Eigen only declares the GPU executor's run(). It is defined here, for
// exactly that expression type, as a memset on the op's stream (all-zero bits
// are 0 in half, float and double). Eigen's generic GPU executor would size
// its grid from TF's cudaDeviceProp, whose layout differs between the CUDA
// headers TF was built with (12.x) and a newer nvcc's (13.x).
namespace Eigen {
namespace internal {

template <typename T>
using ZeroFill = const TensorAssignOp<
    typename ::tensorflow::TTypes<T>::Flat,
    const TensorCwiseNullaryOp<scalar_constant_op<T>,
                               const typename ::tensorflow::TTypes<T>::Flat>>;

#define CAR_DEFINE_GPU_ZERO_FILL(T)                                          \
  template <>                                                                \
  void TensorExecutor<ZeroFill<T>, GpuDevice,                                \
                      IsVectorizable<GpuDevice, ZeroFill<T>>::value,         \
                      IsTileable<GpuDevice, ZeroFill<T>>::value>::           \
      run(const ZeroFill<T>& expr, const GpuDevice& device) {                \
    const auto& target = expr.lhsExpression();                               \
    car_tf::ReportLaunch(                                                   \
        cudaMemsetAsync(target.data(), 0, target.size() * sizeof(T),        \
                        device.stream()),                                    \
        "AdaptiveResampleGrad zero fill");                                   \
  }

CAR_DEFINE_GPU_ZERO_FILL(Eigen::half)
CAR_DEFINE_GPU_ZERO_FILL(float)
CAR_DEFINE_GPU_ZERO_FILL(double)
#undef CAR_DEFINE_GPU_ZERO_FILL

}  // namespace internal
}  // namespace Eigen

#endif  // GOOGLE_CUDA
