/*
 * The public header compiles as plain C99 with -pedantic -Werror, and every
 * type it declares is usable from C: each struct and enum gets a variable,
 * each struct field is touched, each handle is declared as a pointer.
 * Compiled only (an OBJECT library), never run.
 */
#include <dann.h>

#if !defined(DANN_VERSION_MAJOR) || !defined(DANN_VERSION_MINOR) || \
    !defined(DANN_VERSION_PATCH) || !defined(DANN_VERSION_NUMBER)
#error "dann.h must define the version macros"
#endif

#if DANN_VERSION_NUMBER != \
    (DANN_VERSION_MAJOR * 10000 + DANN_VERSION_MINOR * 100 + DANN_VERSION_PATCH)
#error "DANN_VERSION_NUMBER must be MAJOR*10000 + MINOR*100 + PATCH"
#endif

int dann_header_c99_uses_every_type(void);

int dann_header_c99_uses_every_type(void)
{
    dann_status status = DANN_OK;
    dann_layer_kind kind = DANN_LAYER_CONV2D;
    dann_preset preset = DANN_PRESET_MNIST;
    dann_input_format format = DANN_INPUT_F32_NCHW;
    dann_domain domain = DANN_DOMAIN_SOURCE;

    dann_layer_desc layer = {DANN_LAYER_DENSE, 10, 0, 0, 0, 0, 0, 0, 0.0f, 0.0f, 0.0f};
    dann_layer_desc layers[2];
    dann_model_desc desc;
    dann_model_info info;
    dann_param_info param;
    dann_batch batch;
    dann_train_params train_params;
    dann_step_result result;

    dann_model *model = NULL;
    const dann_model *const_model = NULL;
    dann_context *ctx = NULL;
    dann_trainer *trainer = NULL;

    unsigned char pixels[4] = {0, 1, 2, 3};
    int sum = 0;

    status = DANN_ERR_INVALID_ARGUMENT;
    status = DANN_ERR_SHAPE;
    status = DANN_ERR_NUMERIC;
    status = DANN_ERR_OUT_OF_MEMORY;
    status = DANN_ERR_BACKEND;
    status = DANN_ERR_IO;
    status = DANN_ERR_FORMAT;
    status = DANN_ERR_UNSUPPORTED;
    status = DANN_ERR_INTERNAL;

    kind = DANN_LAYER_MAXPOOL2D;
    kind = DANN_LAYER_RELU;
    kind = DANN_LAYER_SIGMOID;
    kind = DANN_LAYER_DROPOUT;
    kind = DANN_LAYER_BATCHNORM;
    kind = DANN_LAYER_FLATTEN;

    preset = DANN_PRESET_SVHN;
    preset = DANN_PRESET_GTSRB;
    format = DANN_INPUT_F32_NHWC;
    format = DANN_INPUT_U8_HWC;
    domain = DANN_DOMAIN_TARGET;

    layer.kind = kind;
    layer.units = 3;
    layer.kernel_h = layer.kernel_w = 5;
    layer.stride_h = layer.stride_w = 1;
    layer.pad_h = layer.pad_w = 2;
    layer.rate = 0.5f;
    layer.eps = 1e-5f;
    layer.momentum = 0.1f;
    layers[0] = layer;
    layers[1] = layer;

    desc.in_channels = 3;
    desc.in_height = 28;
    desc.in_width = 28;
    desc.features = layers;
    desc.n_features = 2;
    desc.label_head = layers;
    desc.n_label_head = 1;
    desc.domain_head = layers + 1;
    desc.n_domain_head = 1;
    desc.domain_batchnorm = 0;

    info.in_channels = 3;
    info.in_height = 28;
    info.in_width = 28;
    info.num_classes = 10;
    info.feature_size = 768;
    info.n_params = 14;
    info.n_weights = 1;

    param.name = "features.0.weight";
    param.ndim = 4;
    param.shape[0] = 32;
    param.shape[1] = 3;
    param.shape[2] = 5;
    param.shape[3] = 5;
    param.numel = (size_t)(param.shape[0] * param.shape[1] * param.shape[2] * param.shape[3]);
    param.trainable = 1;

    batch.format = format;
    batch.data = pixels;
    batch.n = 1;
    batch.height = 2;
    batch.width = 2;
    batch.channels = 1;

    train_params.momentum = 0.9f;
    train_params.weight_decay = 0.0f;
    train_params.seed = (uint64_t)1;
    train_params.optimizer = DANN_OPTIMIZER_ADAM;
    train_params.optimizer = DANN_OPTIMIZER_SGD;
    train_params.adam_beta1 = 0.9f;
    train_params.adam_beta2 = 0.999f;
    train_params.adam_eps = 1e-8f;
    train_params.entropy_weight = 0.0f;

    result.label_loss = 0.0f;
    result.domain_loss = 0.0f;
    result.domain_accuracy = 0.0f;
    result.target_entropy = 0.0f;

    const_model = model;
    sum += (int)status + (int)kind + (int)preset + (int)format + (int)domain;
    sum += desc.in_channels + (int)desc.n_features + (int)desc.n_label_head + (int)desc.n_domain_head;
    sum += (desc.features != NULL) + (desc.label_head != NULL) + (desc.domain_head != NULL);
    sum += info.in_channels + info.num_classes + info.feature_size + (int)info.n_params;
    sum += (int)info.n_weights + info.in_height + info.in_width;
    sum += param.ndim + (int)param.numel + param.trainable + (param.name != NULL);
    sum += (int)batch.n + batch.height + batch.width + batch.channels + (int)batch.format;
    sum += (batch.data != NULL) + desc.domain_batchnorm + desc.in_height + desc.in_width;
    sum += (int)(train_params.momentum + train_params.weight_decay + result.label_loss);
    sum += (int)(result.domain_loss + result.domain_accuracy) + (int)train_params.seed;
    sum += layers[1].units + layers[0].kernel_h + (int)layers[0].rate;
    sum += (const_model != NULL) + (ctx != NULL) + (trainer != NULL);
    return sum;
}
