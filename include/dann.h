/*
 * dann.h - CPU inference and on-device unsupervised domain adaptation (DANN).
 *
 * dann implements the domain-adversarial network of Ganin & Lempitsky: a feature
 * extractor, a label head, and a domain head behind a gradient reversal layer
 * (GRL). It runs on the CPU through oneDNN and OpenMP.
 *
 * ---------------------------------------------------------------------------
 * Tutorial
 * ---------------------------------------------------------------------------
 *
 *   dann_model *model = NULL;
 *   if (dann_model_create_preset(DANN_PRESET_MNIST, 42, &model) != DANN_OK) {
 *       fprintf(stderr, "dann: %s\n", dann_last_error());
 *       return 1;
 *   }
 *
 *   // Training: one labelled source batch and one unlabelled target batch per step.
 *   dann_trainer *trainer = NULL;
 *   dann_train_params tp = dann_train_params_default();
 *   dann_trainer_create(model, &tp, &trainer);
 *
 *   dann_batch src = dann_batch_u8_hwc(src_pixels, 64, 28, 28, 1);  // grayscale
 *   dann_batch tgt = dann_batch_u8_hwc(tgt_pixels, 64, 28, 28, 3);  // colour
 *   dann_step_result r;
 *   dann_trainer_step(trainer, &src, src_labels, &tgt, lambda, lr, &r);
 *
 *   // Inference: a context holds what one thread needs to run the model.
 *   dann_context *ctx = NULL;
 *   dann_context_create(model, &ctx);
 *   float probs[10 * 64];
 *   dann_predict(ctx, &tgt, probs, 10 * 64, NULL, 0);
 *
 *   dann_context_destroy(ctx);
 *   dann_trainer_destroy(trainer);
 *   dann_model_destroy(model);
 *
 * ---------------------------------------------------------------------------
 * Conventions
 * ---------------------------------------------------------------------------
 * - Every fallible call returns a dann_status; DANN_OK is 0. On failure,
 *   dann_last_error() returns a message naming the problem. The message is
 *   per thread and stays valid until the next dann call on that thread.
 * - Objects are created through a trailing out-pointer and released by the
 *   matching destroy function, which accepts NULL. On failure the out-pointer
 *   is set to NULL.
 * - The library never aborts or exits the host; no global state, no init call.
 * - Domain labels: source = 0, target = 1. The domain head's output is the
 *   logit (or, from dann_predict, the probability) that a sample is from the
 *   target domain.
 * - Parameters are exposed in PyTorch's names, shapes and layouts: convolution
 *   weights OIHW, fully connected weights (out, in), the first fully connected
 *   layer after a convolution reading its input flattened in C*H*W order.
 * - Threads: a dann_model may be read by several threads at once (contexts
 *   created from it), but must not be read while a trainer steps it.
 *   One dann_context or dann_trainer must be used by one thread at a time.
 */
#ifndef DANN_H
#define DANN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DANN_VERSION_MAJOR 0
#define DANN_VERSION_MINOR 1
#define DANN_VERSION_PATCH 0
/* MAJOR*10000 + MINOR*100 + PATCH */
#define DANN_VERSION_NUMBER \
    (DANN_VERSION_MAJOR * 10000 + DANN_VERSION_MINOR * 100 + DANN_VERSION_PATCH)

#if defined(_WIN32)
#define DANN_API
#elif defined(__GNUC__) && defined(DANN_BUILDING_LIBRARY)
#define DANN_API __attribute__((visibility("default")))
#else
#define DANN_API
#endif

/* ------------------------------------------------------------------------- */
/* Status and errors                                                          */
/* ------------------------------------------------------------------------- */

/* Values are only ever appended. */
typedef enum dann_status {
    DANN_OK = 0,
    DANN_ERR_INVALID_ARGUMENT = 1, /* NULL pointer, bad value, bad option   */
    DANN_ERR_SHAPE = 2,            /* wrong size, count or dimension         */
    DANN_ERR_NUMERIC = 3,          /* NaN or Inf in an input or a result     */
    DANN_ERR_OUT_OF_MEMORY = 4,
    DANN_ERR_BACKEND = 5,          /* oneDNN refused or failed               */
    DANN_ERR_IO = 6,               /* reading or writing a file failed       */
    DANN_ERR_FORMAT = 7,           /* a file is malformed or corrupted       */
    DANN_ERR_UNSUPPORTED = 8,      /* valid request this build cannot serve  */
    DANN_ERR_INTERNAL = 9          /* a bug in dann: please report it        */
} dann_status;

/* A static, human-readable name for a status ("DANN_ERR_SHAPE: ..."). Never NULL. */
DANN_API const char *dann_status_string(dann_status status);

/* The detail of the last failure on the calling thread; "" if none. Never NULL.
 * Valid until the next dann call on the same thread. */
DANN_API const char *dann_last_error(void);

/* The runtime library version, "MAJOR.MINOR.PATCH", and as a number
 * (compare with DANN_VERSION_NUMBER to detect a header/library mismatch). */
DANN_API const char *dann_version_string(void);
DANN_API unsigned dann_version_number(void);

/* ------------------------------------------------------------------------- */
/* Network description                                                        */
/* ------------------------------------------------------------------------- */

typedef enum dann_layer_kind {
    DANN_LAYER_CONV2D = 0,    /* units = output channels; kernel, stride, pad   */
    DANN_LAYER_MAXPOOL2D = 1, /* kernel, stride, pad                            */
    DANN_LAYER_DENSE = 2,     /* fully connected; units = outputs; flattens CHW */
    DANN_LAYER_RELU = 3,
    DANN_LAYER_SIGMOID = 4,
    DANN_LAYER_DROPOUT = 5,   /* rate = drop probability, inverted scaling      */
    DANN_LAYER_BATCHNORM = 6, /* over channels (or features); eps, momentum     */
    DANN_LAYER_FLATTEN = 7
} dann_layer_kind;

/* One layer. Fields a kind does not use are ignored; zero them.
 * Square shorthand: kernel_w == 0 makes kernel_w = kernel_h, and then a zero
 * stride_w or pad_w copies stride_h or pad_h. With kernel_w set, every _w
 * value is taken as given (a zero stride still means the default). */
typedef struct dann_layer_desc {
    dann_layer_kind kind;
    int units;     /* CONV2D: output channels; DENSE: outputs              */
    int kernel_h, kernel_w;
    int stride_h, stride_w; /* 0: 1 for CONV2D, the kernel size for MAXPOOL2D */
    int pad_h, pad_w;
    float rate;     /* DROPOUT: probability of dropping a unit, [0, 1)      */
    float eps;      /* BATCHNORM: 0 means 1e-5                               */
    float momentum; /* BATCHNORM running-statistics momentum, PyTorch form:
                       running = (1 - momentum) * running + momentum * batch;
                       0 means 0.1                                           */
} dann_layer_desc;

/* Convenience constructors for layer descriptions. */
DANN_API dann_layer_desc dann_layer_conv2d(int out_channels, int kernel, int stride, int pad);
DANN_API dann_layer_desc dann_layer_maxpool2d(int kernel, int stride, int pad);
DANN_API dann_layer_desc dann_layer_dense(int units);
DANN_API dann_layer_desc dann_layer_relu(void);
DANN_API dann_layer_desc dann_layer_sigmoid(void);
DANN_API dann_layer_desc dann_layer_dropout(float rate);
DANN_API dann_layer_desc dann_layer_batchnorm(void);
DANN_API dann_layer_desc dann_layer_flatten(void);

/*
 * A DANN network: input -> features -> label head (softmax over classes), and
 * features -> GRL -> domain head (one logit for "target"). The feature output
 * is flattened to (N, C*H*W). The label head must end in a DENSE layer whose
 * units are the number of classes (>= 2); the domain head must end in a DENSE
 * layer with 1 unit. Parameter names follow a PyTorch module with three
 * nn.Sequential members named "features", "label_head" and "domain_head", whose
 * indices are the positions in these arrays (e.g. "features.0.weight").
 */
typedef struct dann_model_desc {
    int in_channels, in_height, in_width; /* feature vectors: (D, 1, 1) */
    const dann_layer_desc *features;
    size_t n_features;
    const dann_layer_desc *label_head;
    size_t n_label_head;
    const dann_layer_desc *domain_head;
    size_t n_domain_head;
    /* Nonzero: every BATCHNORM layer normalises the source part and the target
     * part of a training batch each with its own statistics, and keeps
     * separate running statistics per domain. */
    int domain_batchnorm;
} dann_model_desc;

typedef enum dann_preset {
    DANN_PRESET_MNIST = 0, /* 3x28x28, 10 classes, feature 768  (PAPER)     */
    DANN_PRESET_SVHN = 1,  /* 3x32x32, 10 classes, feature 8192, padded     */
    DANN_PRESET_GTSRB = 2  /* 3x40x40, 43 classes, feature 1024             */
} dann_preset;

/* ------------------------------------------------------------------------- */
/* Model: architecture + weights                                              */
/* ------------------------------------------------------------------------- */

typedef struct dann_model dann_model;

/* Creates a model from a description; weights and biases are drawn uniformly in
 * +-1/sqrt(fan_in) from `seed`; batch-norm scale 1, shift 0, running mean 0,
 * running variance 1. The description is copied.
 * Returns DANN_ERR_INVALID_ARGUMENT or DANN_ERR_SHAPE naming the faulty layer. */
DANN_API dann_status dann_model_create(const dann_model_desc *desc, uint64_t seed,
                                       dann_model **out);

/* One of the paper's networks. */
DANN_API dann_status dann_model_create_preset(dann_preset preset, uint64_t seed,
                                              dann_model **out);

/* The shallow DANN: input_dim features -> DENSE hidden_units, SIGMOID ->
 * label head DENSE num_classes; domain head DENSE 1 (a logistic regressor). */
DANN_API dann_status dann_model_create_mlp(int input_dim, int hidden_units,
                                           int num_classes, uint64_t seed,
                                           dann_model **out);

DANN_API void dann_model_destroy(dann_model *model);

/* A deep copy: architecture, weights, input normalisation, thread setting and
 * replay set. */
DANN_API dann_status dann_model_clone(const dann_model *model, dann_model **out);

/* Input shape (channels, height, width), classes, and feature width. */
typedef struct dann_model_info {
    int in_channels, in_height, in_width;
    int num_classes;
    int feature_size;
    size_t n_params;      /* entries of the parameter API, buffers included */
    size_t n_weights;     /* trainable scalars                               */
} dann_model_info;

DANN_API dann_status dann_model_get_info(const dann_model *model, dann_model_info *out);

/* Normalisation applied to uint8 input: x = pixel * scale - mean[c].
 * Defaults: scale 1/255, mean 0. `channels` must equal the model's input
 * channels. Float input is used as given. */
DANN_API dann_status dann_model_set_input_norm(dann_model *model, float scale,
                                               const float *mean, int channels);

/* Threads used by oneDNN and dann's own loops in calls on this model's
 * contexts and trainers: 0 (default) uses OpenMP's current setting. The
 * calling thread's OpenMP setting is restored after each call. Not to be
 * called while another thread uses the model. */
DANN_API dann_status dann_model_set_threads(dann_model *model, int threads);

/* ------------------------------------------------------------------------- */
/* Parameter access (PyTorch names, shapes, layouts)                          */
/* ------------------------------------------------------------------------- */

typedef struct dann_param_info {
    const char *name;  /* e.g. "features.0.weight"; valid while the model lives */
    int ndim;          /* 1 to 4                                                 */
    int64_t shape[4];
    size_t numel;
    int trainable;     /* 0 for batch-norm running statistics                   */
} dann_param_info;

DANN_API size_t dann_model_param_count(const dann_model *model);
DANN_API dann_status dann_model_param_info(const dann_model *model, size_t index,
                                           dann_param_info *out);
/* Index of the parameter named `name`; DANN_ERR_INVALID_ARGUMENT if absent. */
DANN_API dann_status dann_model_param_find(const dann_model *model, const char *name,
                                           size_t *index);
/* Copies the parameter out to / in from `data` of exactly `count` floats
 * (count must equal numel). param_set rejects NaN and Inf values and leaves the
 * parameter unchanged on any error. */
DANN_API dann_status dann_model_param_get(const dann_model *model, size_t index,
                                          float *data, size_t count);
DANN_API dann_status dann_model_param_set(dann_model *model, size_t index,
                                          const float *data, size_t count);

/* ------------------------------------------------------------------------- */
/* Input batches                                                              */
/* ------------------------------------------------------------------------- */

typedef enum dann_input_format {
    DANN_INPUT_F32_NCHW = 0,
    DANN_INPUT_F32_NHWC = 1,
    DANN_INPUT_U8_HWC = 2 /* N images, each H*W*C bytes, normalised by the model */
} dann_input_format;

/* A view of caller-owned samples; dann never keeps the pointer. `channels` may
 * be the model's channel count or 1: a single-channel batch fed to a
 * multi-channel network is replicated to every channel. Height and width must
 * equal the model's. */
typedef struct dann_batch {
    dann_input_format format;
    const void *data;
    size_t n;
    int height, width, channels;
} dann_batch;

DANN_API dann_batch dann_batch_f32_nchw(const float *data, size_t n, int channels,
                                        int height, int width);
DANN_API dann_batch dann_batch_f32_nhwc(const float *data, size_t n, int height,
                                        int width, int channels);
DANN_API dann_batch dann_batch_u8_hwc(const uint8_t *data, size_t n, int height,
                                      int width, int channels);

/* ------------------------------------------------------------------------- */
/* Inference context                                                          */
/* ------------------------------------------------------------------------- */

typedef struct dann_context dann_context;

/* What one thread needs to run a model: primitives, activations and its own
 * oneDNN scratchpad, built per batch size on first use and reused. The model
 * must outlive the context. Contexts of one model may run on different threads
 * at once. */
DANN_API dann_status dann_context_create(const dann_model *model, dann_context **out);
DANN_API void dann_context_destroy(dann_context *ctx);

typedef enum dann_domain { DANN_DOMAIN_SOURCE = 0, DANN_DOMAIN_TARGET = 1 } dann_domain;

/* With domain batch-norm, which domain's running statistics inference uses
 * (default: target). Without domain batch-norm it has no effect. */
DANN_API dann_status dann_context_set_domain(dann_context *ctx, dann_domain domain);

/* Class probabilities for `batch`: probs receives n * num_classes floats
 * (probs_count must be at least that). domain_probs, if not NULL, receives
 * P(target) from the domain head for each sample (domain_count >= n).
 * DANN_ERR_NUMERIC if the input holds NaN or Inf. */
DANN_API dann_status dann_predict(dann_context *ctx, const dann_batch *batch,
                                  float *probs, size_t probs_count,
                                  float *domain_probs, size_t domain_count);

/*
 * Switches `ctx` to int8 inference. The model runs once in f32 over
 * `calibration` (representative inputs, e.g. a few hundred target samples;
 * any batch size, with the context's batch-norm domain), which records the
 * range of every convolution's and dense layer's input and output. From then
 * on dann_predict, dann_features and dann_drift_score on this context run
 * those layers in int8:
 * - weights: s8, symmetric, one scale per output channel (127 / the
 *   channel's largest |weight|); biases stay f32;
 * - activations: one scale per tensor from the calibrated range: u8 over
 *   [0, max] where calibration saw no negative value (e.g. after a ReLU),
 *   s8 over [-max|x|, max|x|] otherwise; values outside saturate;
 * - sums in int32 (exact), then scaled back; a following ReLU is fused, and
 *   its output stays u8 on the way to the next int8 layer (through max
 *   pooling); features, logits and probabilities come out f32. The first
 *   convolution runs in int8 too, on the input quantized like any other
 *   activation.
 * The activation scales are fixed by the calibration. When the model's
 * weights change afterwards (dann_model_param_set, a trainer step, an
 * adapter's new snapshot), the next call on the context quantizes the new
 * weights again, with the calibrated activation scales; call
 * dann_context_quantize again to recalibrate. There is no way back to f32 on
 * this context: create another. Predictions differ from f32 by the
 * quantization error (tests/test_int8.cpp measures it on the MNIST network).
 * DANN_ERR_INVALID_ARGUMENT for NULL pointers, DANN_ERR_SHAPE for an empty or
 * misshapen batch, DANN_ERR_NUMERIC for NaN/Inf in the batch or in a layer's
 * calibrated values, DANN_ERR_UNSUPPORTED where
 * dann_precision_supported(DANN_PRECISION_INT8) is 0. On error the context
 * is unchanged. Builds new plans (allocates); later calls allocate nothing.
 */
DANN_API dann_status dann_context_quantize(dann_context *ctx, const dann_batch *calibration);

/* ------------------------------------------------------------------------- */
/* Training                                                                   */
/* ------------------------------------------------------------------------- */

typedef enum dann_optimizer {
    DANN_OPTIMIZER_SGD = 0, /* with momentum, PyTorch's form                    */
    DANN_OPTIMIZER_ADAM = 1 /* PyTorch's Adam (bias-corrected, L2 weight decay) */
} dann_optimizer;

/* Arithmetic of the convolutions and dense layers. */
typedef enum dann_precision {
    DANN_PRECISION_F32 = 0, /* f32 throughout                                   */
    /* Training: products take bf16 operands (activations, weights and output
     * gradients rounded to bf16) and accumulate in f32: every convolution's
     * forward pass and data gradient; the weight gradients of convolutions
     * with unit strides, at least 16 input channels and at most 64 output
     * positions (8x8); the forward and data-gradient products of dense layers
     * with at least 16 input features. Other weight gradients (the first
     * convolution's, larger convolutions', dense layers') come from bf16
     * operands too on CPUs with AVX512-BF16 but no AMX (where that is about
     * twice as fast as f32) and from f32 operands on AMX CPUs (where it is
     * not); so bf16 runs on the two kinds of CPU differ in the low bits.
     * A convolution whose output only a max pooling with
     * non-overlapping windows reads, before another convolution, writes it
     * in bf16 (pooling bf16 is exact). Weights, optimizer state, batch
     * norm, gradients and losses stay f32. Needs AVX512-BF16 or AMX: see
     * dann_precision_supported.
     * Steps are deterministic but differ from f32 in the low bits. */
    DANN_PRECISION_BF16 = 1,
    /* Inference only (dann_context_quantize): u8/s8 activations, s8 weights,
     * exact int32 sums. Needs int8 dot products (AVX512-VNNI, AVX-VNNI or
     * AMX). A trainer refuses it (DANN_ERR_INVALID_ARGUMENT). */
    DANN_PRECISION_INT8 = 2
} dann_precision;

/* 1 when this CPU (as limited by ONEDNN_MAX_CPU_ISA) runs `precision`
 * natively, else 0. DANN_PRECISION_F32 is always supported. */
DANN_API int dann_precision_supported(dann_precision precision);

/* Defaults (dann_train_params_default) after each field. */
typedef struct dann_train_params {
    float momentum;      /* SGD momentum, PyTorch form v = m v + g; w -= lr v. 0.9 */
    float weight_decay;  /* L2: wd * w added to every trainable parameter's
                            gradient (biases too), as PyTorch's optimizers do. 0 */
    uint64_t seed;       /* dropout masks. 1                                        */
    dann_optimizer optimizer; /* DANN_OPTIMIZER_SGD                                 */
    float adam_beta1, adam_beta2, adam_eps; /* 0.9, 0.999, 1e-8                     */
    /* Weight of the mean prediction entropy of the label head on the target
     * batch, added to the loss (pushes target predictions to be confident).
     * 0 (off). Uses no target labels. */
    float entropy_weight;
    /* DANN_PRECISION_F32. DANN_PRECISION_BF16 where unsupported makes
     * dann_trainer_create fail with DANN_ERR_UNSUPPORTED; DANN_PRECISION_INT8
     * with DANN_ERR_INVALID_ARGUMENT. */
    dann_precision precision;
} dann_train_params;

DANN_API dann_train_params dann_train_params_default(void);

typedef struct dann_trainer dann_trainer;

/* Gradients, optimizer state and a training context for `model`, which it
 * updates in place. The model must outlive the trainer. */
DANN_API dann_status dann_trainer_create(dann_model *model, const dann_train_params *params,
                                         dann_trainer **out);
DANN_API void dann_trainer_destroy(dann_trainer *trainer);

typedef struct dann_step_result {
    float label_loss;      /* mean softmax cross-entropy over the source batch   */
    float domain_loss;     /* mean logistic loss over source + target; 0 if none */
    float domain_accuracy; /* share of samples whose domain logit has the right
                              sign (source < 0, target > 0); 0 if none          */
    float target_entropy;  /* mean prediction entropy on the target batch (nats);
                              computed when entropy_weight > 0, else 0           */
} dann_step_result;

/*
 * One DANN step: the source batch (with `labels`, one per sample, each in
 * [0, num_classes)) and the target batch run through the features together;
 * the label loss is taken on the source part, the domain loss (source 0,
 * target 1) on all samples; the GRL hands the features -lambda times the
 * domain gradient; then SGD with momentum at learning rate `lr` updates every
 * parameter. target == NULL makes a source-only step: label loss only, the
 * domain head is not updated.
 * Errors leave the model unchanged: DANN_ERR_NUMERIC for NaN/Inf in inputs, or
 * for a non-finite loss (the step is then not applied).
 */
DANN_API dann_status dann_trainer_step(dann_trainer *trainer, const dann_batch *source,
                                       const int32_t *labels, const dann_batch *target,
                                       float lambda, float lr, dann_step_result *out);

/*
 * AdaBN: re-estimates the batch-norm running statistics from unlabelled target
 * samples (all of `target`, in batches of `batch_size`, each normalised with its
 * own batch statistics, averaged over the batches). With domain batch-norm the
 * target statistics are replaced, otherwise the shared ones. Weights are not
 * changed. A model without BATCHNORM layers is left as it is (DANN_OK).
 */
DANN_API dann_status dann_trainer_adapt_batchnorm(dann_trainer *trainer,
                                                  const dann_batch *target, size_t batch_size);

/* Steps taken by this trainer (restored by dann_trainer_load). */
DANN_API uint64_t dann_trainer_steps(const dann_trainer *trainer);

/* ------------------------------------------------------------------------- */
/* Features                                                                   */
/* ------------------------------------------------------------------------- */

/* The feature extractor's output for `batch`: n * feature_size floats
 * (dann_model_info.feature_size), C*H*W-flattened. */
DANN_API dann_status dann_features(dann_context *ctx, const dann_batch *batch, float *features,
                                   size_t count);

/* ------------------------------------------------------------------------- */
/* Schedules of the paper (p = progress from 0 to 1)                          */
/* ------------------------------------------------------------------------- */

/* mu0 / (1 + alpha p)^beta; the paper: mu0 0.01, alpha 10, beta 0.75. */
DANN_API float dann_schedule_lr(float p, float mu0, float alpha, float beta);
/* 2 / (1 + exp(-gamma p)) - 1; the paper: gamma 10. */
DANN_API float dann_schedule_lambda(float p, float gamma);

/* ------------------------------------------------------------------------- */
/* Files                                                                      */
/* ------------------------------------------------------------------------- */

/*
 * A model file holds the architecture, the input normalisation, every
 * parameter and the model's replay set, if it has one (docs/model-format.md).
 * Saving writes a temporary file in the same folder, flushes it to disk and
 * renames it over `path`, so a crash leaves the old file or the new one,
 * whole; a failed save leaves the old file untouched. Loading reads format
 * versions 1 and 2 and checks the magic, the version, every length, the CRC-32
 * of every part and every value: DANN_ERR_FORMAT names what is wrong,
 * DANN_ERR_IO what could not be read or written.
 */
DANN_API dann_status dann_model_save(const dann_model *model, const char *path);
DANN_API dann_status dann_model_load(const char *path, dann_model **out);

/* A checkpoint: the trainer's model plus its optimizer state and step count.
 * dann_model_load reads a checkpoint's model. dann_trainer_load restores the
 * weights, input normalisation and optimizer state into the trainer's model,
 * whose architecture must match the file's (DANN_ERR_SHAPE otherwise); the
 * model keeps its own replay set. */
DANN_API dann_status dann_trainer_save(const dann_trainer *trainer, const char *path);
DANN_API dann_status dann_trainer_load(dann_trainer *trainer, const char *path);

/* ------------------------------------------------------------------------- */
/* Source replay set                                                          */
/* ------------------------------------------------------------------------- */

/*
 * A model may carry a few thousand labelled source samples: on the device,
 * DANN needs labelled source data to keep the label task anchored while it
 * adapts (dann_adapter), and the guard measures accuracy on them. They are
 * stored compactly in the samples' own format (uint8 HWC stays one byte per
 * value) and saved with the model.
 *
 * dann_model_set_replay copies `samples` (format DANN_INPUT_U8_HWC or
 * DANN_INPUT_F32_NCHW; channels 1 or the model's; height and width the
 * model's) and `labels` (one per sample, in [0, num_classes)). samples == NULL
 * (or n == 0) removes the replay set. NaN/Inf values are refused.
 */
DANN_API dann_status dann_model_set_replay(dann_model *model, const dann_batch *samples,
                                           const int32_t *labels);

typedef struct dann_replay_info {
    size_t n;                 /* samples; 0 if the model has no replay set */
    dann_input_format format; /* DANN_INPUT_U8_HWC or DANN_INPUT_F32_NCHW   */
    int channels, height, width;
    size_t bytes;             /* storage of samples and labels               */
} dann_replay_info;

DANN_API dann_status dann_model_replay_info(const dann_model *model, dann_replay_info *out);

/* Copies samples [first, first + count) of the replay set out: `data` receives
 * count samples in the replay set's format (data_bytes must be enough), and
 * `labels` (if not NULL) count labels. */
DANN_API dann_status dann_model_get_replay(const dann_model *model, size_t first, size_t count,
                                           void *data, size_t data_bytes, int32_t *labels);

/* ------------------------------------------------------------------------- */
/* Drift score                                                                */
/* ------------------------------------------------------------------------- */

/*
 * How far `recent` samples are from the source, seen by the model's domain head
 * (P(target), source = 0, target = 1): with a `reference` batch of source
 * samples (e.g. the replay set), 2 * AUC - 1 clamped to [0, 1], where AUC is
 * the probability that a recent sample gets a higher P(target) than a reference
 * sample (ties count one half; 0: indistinguishable from the source; 1: fully
 * separated). With reference == NULL, the mean P(target) of the recent samples.
 * Both batches run with the context's batch-norm statistics
 * (dann_context_set_domain) and, on an adapter context, the same snapshot.
 * DANN_ERR_SHAPE for an empty or misshapen batch, DANN_ERR_NUMERIC for NaN or
 * Inf in the input or the domain head's output.
 */
DANN_API dann_status dann_drift_score(dann_context *ctx, const dann_batch *recent,
                                      const dann_batch *reference, float *score);

/* ------------------------------------------------------------------------- */
/* On-device adaptation                                                       */
/* ------------------------------------------------------------------------- */

/*
 * An adapter keeps a model serving predictions while it adapts it to an
 * unlabelled target stream. The application pushes target samples into a
 * bounded ring buffer; adaptation runs in rounds of DANN steps (a labelled
 * source batch from the model's replay set + a target batch from the ring),
 * on the caller's thread (dann_adapter_run) or on a thread the adapter owns
 * (dann_adapter_start). After each round a label-free guard checks the
 * candidate weights; if they pass, they are published as a new snapshot,
 * otherwise the adapter rolls back to the last good weights and records why.
 *
 * Predictions: contexts made by dann_adapter_context_create follow the
 * published snapshots. Each dann_predict on such a context uses one
 * consistent set of weights: the latest snapshot at the start of the call.
 * Any number of such contexts may run on other threads during adaptation.
 *
 * Memory: everything (the model copies, optimizer state, ring buffer,
 * primitives, scratchpads, the background thread) is allocated by
 * dann_adapter_create; push, run and predict allocate nothing in dann's own
 * code afterwards. oneDNN itself allocates a small argument map inside every
 * primitive execution (measured by tests/alloc: see dann_adapter_memory).
 */
typedef struct dann_adapter dann_adapter;

typedef enum dann_adapt_mode {
    DANN_ADAPT_DANN = 0,     /* DANN steps on replay (source) + ring (target) */
    DANN_ADAPT_BATCHNORM = 1 /* AdaBN only: re-estimate the batch-norm target
                                statistics from the ring; needs no replay set */
} dann_adapt_mode;

/* Defaults (dann_adapter_params_default) after each field. */
typedef struct dann_adapter_params {
    dann_adapt_mode mode;       /* DANN_ADAPT_DANN                                */
    dann_train_params train;    /* optimizer etc.: dann_train_params_default()
                                   with optimizer ADAM                             */
    float lr;                   /* learning rate of every step. 1e-4               */
    float lambda;               /* GRL factor of every step. 0.3                   */
    size_t source_batch;        /* replay samples per step. 32                     */
    size_t target_batch;        /* ring samples per step. 32                       */
    size_t steps_per_round;     /* steps between guard checks / snapshots. 20      */
    size_t min_new_samples;     /* background: samples pushed since the last round
                                   before another round starts (0: rounds run back
                                   to back). 64                                    */
    size_t capacity;            /* ring buffer, in samples. 2048                   */
    dann_input_format format;   /* of pushed samples: U8_HWC or F32_NCHW. U8_HWC   */
    int channels;               /* of pushed samples: 1 or the model's; 0 = model's */
    size_t guard_samples;       /* replay samples (the first ones) and recent ring
                                   samples (the newest ones) the guard and the
                                   drift score look at. 256                        */
    float guard_max_replay_drop;/* largest allowed drop of replay accuracy against
                                   the last commit (absolute). 0.05                */
    float guard_min_class_entropy; /* smallest allowed ratio of the predicted-class
                                   distribution's entropy on recent samples to the
                                   last commit's on the same samples. 0.5          */
    size_t memory_budget;       /* bytes; creation fails with
                                   DANN_ERR_OUT_OF_MEMORY above it. 0: no limit    */
    int background;             /* nonzero: own a thread for dann_adapter_start. 1 */
} dann_adapter_params;

DANN_API dann_adapter_params dann_adapter_params_default(void);

/* Copies `model` (weights, input normalisation, replay set); the adapter never
 * touches `model` again. DANN mode needs a replay set; BATCHNORM mode needs
 * BATCHNORM layers and target_batch >= 2. Each field is checked
 * (DANN_ERR_INVALID_ARGUMENT naming it). Rounds use the model's thread setting
 * or, if it is 0, the OpenMP setting of the thread calling create.
 *
 * A DANN step draws its source batch uniformly (with replacement) from the
 * replay set and its target batch from the ring's samples. A BATCHNORM round
 * re-estimates the statistics from the newest whole batches of target_batch
 * samples in the ring. The guard's replay check needs a replay set and is
 * skipped without one; replay samples run with the source batch-norm
 * statistics, ring samples with the target ones (with domain batch-norm). */
DANN_API dann_status dann_adapter_create(const dann_model *model,
                                         const dann_adapter_params *params,
                                         dann_adapter **out);
/* Stops the background thread (waiting for the round in progress) and frees
 * everything. Contexts made from the adapter must be destroyed first. */
DANN_API void dann_adapter_destroy(dann_adapter *adapter);

/* Copies `batch` (in the params' format and channels, the model's height and
 * width) into the ring buffer, overwriting the oldest samples when full.
 * Thread-safe with respect to the adapter's own thread. NaN/Inf are refused. */
DANN_API dann_status dann_adapter_push(dann_adapter *adapter, const dann_batch *batch);

/* Runs `rounds` rounds on the calling thread (each: steps_per_round steps,
 * then the guard, then a snapshot or a rollback). DANN_ERR_INVALID_ARGUMENT
 * while the background thread is running; DANN_ERR_SHAPE if the ring holds
 * fewer than target_batch samples. A guard rollback is not an error: see
 * dann_adapter_stats. */
DANN_API dann_status dann_adapter_run(dann_adapter *adapter, size_t rounds);

/* Background adaptation: start lets the adapter's thread run a round whenever
 * min_new_samples new samples have arrived (and the ring holds target_batch);
 * stop waits for the round in progress and returns the first error the thread
 * met since start (DANN_OK if none, and when not running). start is
 * DANN_ERR_INVALID_ARGUMENT for an adapter created with background = 0. */
DANN_API dann_status dann_adapter_start(dann_adapter *adapter);
DANN_API dann_status dann_adapter_stop(dann_adapter *adapter);

/* Commit: the current snapshot becomes the rollback point and the guard's
 * reference. Rollback: the weights return to the last commit (at first, the
 * model the adapter was created from) and are published (a snapshot in the
 * stats). Both wait for a round in progress; a rollback also clears the
 * optimizer state, as a guard rollback does. */
DANN_API dann_status dann_adapter_commit(dann_adapter *adapter);
DANN_API dann_status dann_adapter_rollback(dann_adapter *adapter);

/* A prediction context that follows the adapter's published snapshots (see
 * above). Destroy it with dann_context_destroy before the adapter. */
DANN_API dann_status dann_adapter_context_create(dann_adapter *adapter, dann_context **out);

typedef enum dann_guard_reason {
    DANN_GUARD_NONE = 0,
    DANN_GUARD_NONFINITE = 1,     /* NaN or Inf loss or gradient                */
    DANN_GUARD_REPLAY_DROP = 2,   /* replay (source) accuracy fell too far      */
    DANN_GUARD_CLASS_COLLAPSE = 3 /* predicted classes collapsed on recent data */
} dann_guard_reason;

typedef struct dann_adapter_stats {
    uint64_t rounds;            /* rounds run (accepted + rolled back)          */
    uint64_t steps;             /* DANN steps taken, rolled-back ones included  */
    uint64_t snapshots;         /* snapshots published                          */
    uint64_t guard_events;      /* rounds rolled back by the guard              */
    dann_guard_reason last_guard_reason;
    uint64_t samples_pushed;    /* since creation                               */
    size_t samples_buffered;    /* now in the ring                              */
    float label_loss, domain_loss, domain_accuracy; /* means over the last round */
    float replay_accuracy;      /* of the current snapshot (guard samples)      */
    float reference_replay_accuracy; /* of the last commit                      */
    float class_entropy;        /* normalised entropy of the predicted classes
                                   on recent samples, current snapshot [0, 1];
                                   0 until a round is accepted                 */
    float drift;                /* dann_drift_score of recent samples against
                                   the replay set, with the last commit's
                                   domain head; [0, 1]                          */
    int running;                /* background thread active                     */
} dann_adapter_stats;

/* The figures as of the last finished round; does not wait for one in progress. */
DANN_API dann_status dann_adapter_get_stats(dann_adapter *adapter, dann_adapter_stats *out);

/* Bytes the adapter allocated at creation (fixed for its lifetime): model
 * copies, replay set, optimizer state, the plans' buffers and scratchpads, the
 * ring and its staging buffers. Not counted: oneDNN's primitives themselves
 * (generated code, descriptors), the thread's stack, and contexts made by
 * dann_adapter_context_create. */
DANN_API size_t dann_adapter_memory(const dann_adapter *adapter);

/* Copies the current snapshot (weights, batch-norm statistics, input
 * normalisation, replay set) into `model`, which must have the same
 * architecture (else DANN_ERR_INVALID_ARGUMENT, `model` unchanged); e.g. to
 * save it with dann_model_save. Does not wait for a round in progress: it
 * copies the latest published snapshot. */
DANN_API dann_status dann_adapter_get_model(dann_adapter *adapter, dann_model *model);

#ifdef __cplusplus
}
#endif

#endif /* DANN_H */
