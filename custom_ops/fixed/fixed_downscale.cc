// Fixed-kernel downscale of an 8-bit image, compiled, with no TensorFlow: the compiled
// twin of car_tf.fixed_numpy.downscale_uint8, loaded with ctypes.
//
// LR[y, x, c] = round(sum_{i,j} K[i, j] * P[s y + i, s x + j, c]), with P the HR image
// padded as FixedKernelModel pads it. The caller passes P's rows and columns as source
// indices into the unpadded image (car_tf.fixed_numpy computes the reflections once),
// so this file knows nothing of padding rules.
//
// Per LR row, each of the k input rows it reads is converted once to float and split
// into its s column phases (phase p holds input columns s X + p, channels interleaved).
// Then tap (i, j) = (i, s q + p) adds K[i, j] * phase_p[x + q] to the row's accumulator:
// one contiguous multiply-add over the LR row's values, which the compiler vectorises. Converted rows
// live in a ring of k rows, so an input row is converted once however many LR rows
// read it (k / s of them). LR rows are split into contiguous runs, one per thread.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <thread>
#include <vector>

namespace {

// acc[x] += w * src[x]: all the arithmetic. Built for AVX-512, AVX2 and the baseline;
// the loader picks the best the CPU has.
__attribute__((target_clones("avx512f", "avx2", "default"))) void MultiplyAdd(
    float* __restrict acc, const float* __restrict src, float w, int64_t n) {
  for (int64_t x = 0; x < n; ++x) acc[x] += w * src[x];
}

struct Job {
  const uint8_t* rgb;
  int64_t width, channels;
  const float* kernel;  // [k, k], row-major
  int64_t k, scale;
  const int64_t* rows;  // input row t -> source row, t < s (out_h - 1) + k
  const int64_t* cols;  // input column u -> source column, u < s (out_w + blocks - 1)
  int64_t blocks;       // ceil(k / s): column blocks a tap row spans
  // Input columns [run_begin, run_end) are consecutive source columns from
  // cols[run_begin] on (all but the reflected edges): read without cols.
  int64_t run_begin, run_end;
  uint8_t* out;
  int64_t out_w;
};

// Converts input row `source` (uint8, interleaved channels) to float column phases with
// the channels still interleaved: phases[(p phase_len + X) C + c] = input column s X + p,
// channel c. A tap then reads C phase_len consecutive floats, the same layout as the
// accumulator's. kChannels is C when known at compile time (3: RGB), else 0.
template <int kChannels>
void ConvertRow(const Job& job, const uint8_t* source, int64_t phase_len, float* phases) {
  const int64_t s = job.scale, channels = kChannels ? kChannels : job.channels;
  for (int64_t p = 0; p < s; ++p) {
    float* dst = phases + p * phase_len * channels;
    // Blocks X whose column s X + p lies in the run: [first, last).
    const int64_t first =
        std::min(phase_len, std::max<int64_t>(0, (job.run_begin - p + s - 1) / s));
    const int64_t last = std::max(first, std::min(phase_len, (job.run_end - p + s - 1) / s));
    auto by_index = [&](int64_t bx) {
      const uint8_t* pixel = source + job.cols[s * bx + p] * channels;
      for (int64_t c = 0; c < channels; ++c) dst[bx * channels + c] = pixel[c];
    };
    for (int64_t bx = 0; bx < first; ++bx) by_index(bx);
    if (last > first) {
      // Most of the row: a strided read without the index array.
      const uint8_t* src = source + job.cols[s * first + p] * channels;
      const int64_t stride = s * channels;
      float* run = dst + first * channels;
      for (int64_t n = 0; n < last - first; ++n) {
        for (int64_t c = 0; c < channels; ++c) run[n * channels + c] = src[n * stride + c];
      }
    }
    for (int64_t bx = last; bx < phase_len; ++bx) by_index(bx);
  }
}

// LR rows [y0, y1) of `job`.
template <int kChannels>
void DownscaleRows(const Job& job, int64_t y0, int64_t y1) {
  const int64_t s = job.scale, k = job.k, out_w = job.out_w;
  const int64_t channels = kChannels ? kChannels : job.channels;
  const int64_t phase_len = out_w + job.blocks - 1;  // blocks X of one phase
  const int64_t row_len = s * phase_len * channels;  // one converted input row
  const int64_t line_len = out_w * channels;
  std::vector<float> ring(k * row_len);
  std::vector<int64_t> ring_row(k, -1);  // which input row each slot holds
  std::vector<float> acc(line_len);

  for (int64_t y = y0; y < y1; ++y) {
    std::fill(acc.begin(), acc.end(), 0.0f);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t t = s * y + i;
      const int64_t slot = t % k;
      float* phases = ring.data() + slot * row_len;
      if (ring_row[slot] != t) {
        ConvertRow<kChannels>(job, job.rgb + job.rows[t] * job.width * channels, phase_len,
                              phases);
        ring_row[slot] = t;
      }
      for (int64_t j = 0; j < k; ++j) {
        const int64_t p = j % s, q = j / s;
        MultiplyAdd(acc.data(), phases + (p * phase_len + q) * channels, job.kernel[i * k + j],
                    line_len);
      }
    }
    uint8_t* line = job.out + y * line_len;
    for (int64_t n = 0; n < line_len; ++n) {
      // As the model's to_uint8: clip to [0, 255], round half to even (the default
      // rounding mode, which nearbyint follows, like tf.round and np.rint).
      line[n] = static_cast<uint8_t>(std::nearbyint(std::fmin(std::fmax(acc[n], 0.0f), 255.0f)));
    }
  }
}

}  // namespace

// Returns 0, or a positive code naming the argument that is out of range (checked here so
// that a caller's bug reads as an error, never as memory outside the arrays):
// 1 sizes, 2 kernel, 3 row indices, 4 column indices.
extern "C" int car_fixed_downscale_u8(const uint8_t* rgb, int64_t height, int64_t width,
                                      int64_t channels, const float* kernel, int64_t k,
                                      int64_t scale, const int64_t* rows, int64_t num_rows,
                                      const int64_t* cols, int64_t num_cols, uint8_t* out,
                                      int64_t out_h, int64_t out_w, int64_t threads) {
  if (height < 1 || width < 1 || channels < 1 || out_h < 1 || out_w < 1) return 1;
  if (scale < 1 || k < 1) return 2;
  const int64_t blocks = (k + scale - 1) / scale;
  if (num_rows < scale * (out_h - 1) + k) return 3;
  if (num_cols < scale * (out_w + blocks - 1)) return 4;
  for (int64_t t = 0; t < num_rows; ++t) {
    if (rows[t] < 0 || rows[t] >= height) return 3;
  }
  for (int64_t u = 0; u < num_cols; ++u) {
    if (cols[u] < 0 || cols[u] >= width) return 4;
  }
  // The longest run of consecutive source columns.
  int64_t run_begin = 0, run_end = 1;
  for (int64_t u = 1, begin = 0; u <= num_cols; ++u) {
    if (u == num_cols || cols[u] != cols[u - 1] + 1) {
      if (u - begin > run_end - run_begin) run_begin = begin, run_end = u;
      begin = u;
    }
  }
  const Job job{rgb,    width,  channels,  kernel,  k,   scale, rows,
                cols,   blocks, run_begin, run_end, out, out_w};
  // Fewer than 16 LR rows a thread isn't worth a thread.
  const int64_t count = std::max<int64_t>(1, std::min<int64_t>(threads, out_h / 16));
  void (*rows_of)(const Job&, int64_t, int64_t) =
      channels == 3 ? DownscaleRows<3> : DownscaleRows<0>;
  std::vector<std::thread> workers;
  for (int64_t index = 1; index < count; ++index) {
    workers.emplace_back(rows_of, std::cref(job), out_h * index / count,
                         out_h * (index + 1) / count);
  }
  rows_of(job, 0, out_h / count);
  for (std::thread& worker : workers) worker.join();
  return 0;
}
