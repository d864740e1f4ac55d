/*
 * Every function declared in dann.h links from C against the shared library,
 * and a handful of them answer a real call.
 *
 * WHEN YOU ADD A FUNCTION TO dann.h, ADD IT TO THE TABLE BELOW.
 * The doctest case "every function declared in dann.h is listed in
 * tests/link_all.c" (tests/test_c_api.cpp) fails if one is missing.
 */
#include <dann.h>

#include <stdio.h>
#include <string.h>

/* Any function pointer converts to this type and back without loss (C99
 * 6.3.2.3p8); it is also the one type GCC's -Wcast-function-type accepts. */
typedef void (*dann_any_fn)(void);

typedef struct named_fn {
    const char *name;
    dann_any_fn fn;
} named_fn;

#define DANN_FN(f) { #f, (dann_any_fn)f }

static const named_fn functions[] = {
    /* Status and errors */
    DANN_FN(dann_status_string),
    DANN_FN(dann_last_error),
    DANN_FN(dann_version_string),
    DANN_FN(dann_version_number),
    /* Network description */
    DANN_FN(dann_layer_conv2d),
    DANN_FN(dann_layer_maxpool2d),
    DANN_FN(dann_layer_dense),
    DANN_FN(dann_layer_relu),
    DANN_FN(dann_layer_sigmoid),
    DANN_FN(dann_layer_dropout),
    DANN_FN(dann_layer_batchnorm),
    DANN_FN(dann_layer_flatten),
    /* Model */
    DANN_FN(dann_model_create),
    DANN_FN(dann_model_create_preset),
    DANN_FN(dann_model_create_mlp),
    DANN_FN(dann_model_destroy),
    DANN_FN(dann_model_clone),
    DANN_FN(dann_model_get_info),
    DANN_FN(dann_model_set_input_norm),
    DANN_FN(dann_model_set_threads),
    /* Parameter access */
    DANN_FN(dann_model_param_count),
    DANN_FN(dann_model_param_info),
    DANN_FN(dann_model_param_find),
    DANN_FN(dann_model_param_get),
    DANN_FN(dann_model_param_set),
    /* Input batches */
    DANN_FN(dann_batch_f32_nchw),
    DANN_FN(dann_batch_f32_nhwc),
    DANN_FN(dann_batch_u8_hwc),
    /* Inference context */
    DANN_FN(dann_context_create),
    DANN_FN(dann_context_destroy),
    DANN_FN(dann_context_set_domain),
    DANN_FN(dann_predict),
    DANN_FN(dann_context_quantize),
    /* Training */
    DANN_FN(dann_train_params_default),
    DANN_FN(dann_precision_supported),
    DANN_FN(dann_trainer_create),
    DANN_FN(dann_trainer_destroy),
    DANN_FN(dann_trainer_step),
    DANN_FN(dann_trainer_adapt_batchnorm),
    DANN_FN(dann_trainer_steps),
    /* Features */
    DANN_FN(dann_features),
    /* Schedules */
    DANN_FN(dann_schedule_lr),
    DANN_FN(dann_schedule_lambda),
    /* Files */
    DANN_FN(dann_model_save),
    DANN_FN(dann_model_load),
    DANN_FN(dann_trainer_save),
    DANN_FN(dann_trainer_load),
    /* Source replay set */
    DANN_FN(dann_model_set_replay),
    DANN_FN(dann_model_replay_info),
    DANN_FN(dann_model_get_replay),
    /* Drift score */
    DANN_FN(dann_drift_score),
    /* On-device adaptation */
    DANN_FN(dann_adapter_params_default),
    DANN_FN(dann_adapter_create),
    DANN_FN(dann_adapter_destroy),
    DANN_FN(dann_adapter_push),
    DANN_FN(dann_adapter_run),
    DANN_FN(dann_adapter_start),
    DANN_FN(dann_adapter_stop),
    DANN_FN(dann_adapter_commit),
    DANN_FN(dann_adapter_rollback),
    DANN_FN(dann_adapter_context_create),
    DANN_FN(dann_adapter_get_stats),
    DANN_FN(dann_adapter_memory),
    DANN_FN(dann_adapter_get_model),
};

static int check_status_strings(void)
{
    /* Every value of dann_status, in order; the last one is out of range. */
    static const dann_status statuses[] = {
        DANN_OK, DANN_ERR_INVALID_ARGUMENT, DANN_ERR_SHAPE, DANN_ERR_NUMERIC,
        DANN_ERR_OUT_OF_MEMORY, DANN_ERR_BACKEND, DANN_ERR_IO, DANN_ERR_FORMAT,
        DANN_ERR_UNSUPPORTED, DANN_ERR_INTERNAL,
    };
    size_t i;
    for (i = 0; i < sizeof statuses / sizeof statuses[0]; ++i) {
        const char *s = dann_status_string(statuses[i]);
        if (s == NULL || s[0] == '\0') {
            fprintf(stderr, "dann_status_string(%d) is NULL or empty\n", (int)statuses[i]);
            return 1;
        }
    }
    if (dann_status_string((dann_status)1000) == NULL) {
        fprintf(stderr, "dann_status_string(1000) is NULL\n");
        return 1;
    }
    return 0;
}

static int check_create_destroy(void)
{
    dann_model *model = NULL;
    dann_status st = dann_model_create_preset(DANN_PRESET_MNIST, 42, &model);
    if (st != DANN_OK || model == NULL) {
        fprintf(stderr, "dann_model_create_preset: %s: %s\n", dann_status_string(st),
                dann_last_error());
        return 1;
    }
    dann_model_destroy(model);

    dann_model_destroy(NULL);
    dann_context_destroy(NULL);
    dann_trainer_destroy(NULL);
    return 0;
}

/* Enum arguments out of range: well defined for a C caller (an enum is an
 * integer type here), so the library must reject them, not misbehave. */
static int check_unknown_enums(void)
{
    dann_model *model = (dann_model *)&model; /* must come back NULL */
    dann_context *ctx = NULL;
    dann_layer_desc features[1], label[1], domain[1];
    dann_model_desc desc;
    dann_batch batch;
    float x[2] = {0.0f, 0.0f}, probs[2];
    dann_status st;
    int rc = 1;

    st = dann_model_create_preset((dann_preset)17, 1, &model);
    if (st != DANN_ERR_INVALID_ARGUMENT || model != NULL) {
        fprintf(stderr, "dann_model_create_preset(17): %s\n", dann_status_string(st));
        return 1;
    }

    features[0] = dann_layer_dense(4);
    features[0].kind = (dann_layer_kind)42;
    label[0] = dann_layer_dense(2);
    domain[0] = dann_layer_dense(1);
    memset(&desc, 0, sizeof desc);
    desc.in_channels = 2;
    desc.in_height = 1;
    desc.in_width = 1;
    desc.features = features;
    desc.n_features = 1;
    desc.label_head = label;
    desc.n_label_head = 1;
    desc.domain_head = domain;
    desc.n_domain_head = 1;
    st = dann_model_create(&desc, 1, &model);
    if (st != DANN_ERR_INVALID_ARGUMENT || model != NULL) {
        fprintf(stderr, "dann_model_create(layer kind 42): %s\n", dann_status_string(st));
        if (st == DANN_OK)
            dann_model_destroy(model);
        return 1;
    }

    st = dann_model_create_mlp(2, 3, 2, 1, &model);
    if (st != DANN_OK) {
        fprintf(stderr, "dann_model_create_mlp: %s: %s\n", dann_status_string(st), dann_last_error());
        return 1;
    }
    st = dann_context_create(model, &ctx);
    if (st != DANN_OK) {
        fprintf(stderr, "dann_context_create: %s: %s\n", dann_status_string(st), dann_last_error());
        goto done;
    }
    st = dann_context_set_domain(ctx, (dann_domain)2);
    if (st != DANN_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "dann_context_set_domain(2): %s\n", dann_status_string(st));
        goto done;
    }
    batch = dann_batch_f32_nchw(x, 1, 2, 1, 1);
    batch.format = (dann_input_format)9;
    st = dann_predict(ctx, &batch, probs, 2, NULL, 0);
    if (st != DANN_ERR_INVALID_ARGUMENT) {
        fprintf(stderr, "dann_predict(format 9): %s\n", dann_status_string(st));
        goto done;
    }
    rc = 0;
done:
    dann_context_destroy(ctx);
    dann_model_destroy(model);
    return rc;
}

/* A replay set goes in and comes back out. */
static int check_replay(void)
{
    dann_model *model = NULL;
    const uint8_t pixels[2 * 3] = {1, 2, 3, 4, 5, 6};
    const int32_t labels[2] = {1, 0};
    uint8_t back[2 * 3];
    int32_t back_labels[2];
    dann_replay_info info;
    dann_batch batch = dann_batch_u8_hwc(pixels, 2, 1, 1, 3);
    int rc = 1;

    if (dann_model_create_mlp(3, 4, 2, 1, &model) != DANN_OK) {
        fprintf(stderr, "dann_model_create_mlp: %s\n", dann_last_error());
        return 1;
    }
    if (dann_model_set_replay(model, &batch, labels) != DANN_OK ||
        dann_model_replay_info(model, &info) != DANN_OK ||
        dann_model_get_replay(model, 0, 2, back, sizeof back, back_labels) != DANN_OK) {
        fprintf(stderr, "replay set: %s\n", dann_last_error());
        goto done;
    }
    if (info.n != 2 || info.format != DANN_INPUT_U8_HWC || memcmp(back, pixels, sizeof back) != 0 ||
        back_labels[0] != 1 || back_labels[1] != 0) {
        fprintf(stderr, "replay set: what came back differs from what went in\n");
        goto done;
    }
    rc = 0;
done:
    dann_model_destroy(model);
    return rc;
}

int main(void)
{
    const size_t n = sizeof functions / sizeof functions[0];
    size_t i;
    const char *version;

    for (i = 0; i < n; ++i) {
        if (functions[i].fn == NULL) {
            fprintf(stderr, "%s has a NULL address\n", functions[i].name);
            return 1;
        }
    }
    printf("dann_link_c: %u functions linked\n", (unsigned)n);

    version = dann_version_string();
    if (version == NULL || strchr(version, '.') == NULL) {
        fprintf(stderr, "dann_version_string() is not MAJOR.MINOR.PATCH\n");
        return 1;
    }
    if (dann_version_number() != (unsigned)DANN_VERSION_NUMBER) {
        fprintf(stderr, "dann_version_number() %u != DANN_VERSION_NUMBER %u\n",
                dann_version_number(), (unsigned)DANN_VERSION_NUMBER);
        return 1;
    }
    printf("dann_link_c: library %s\n", version);

    if (check_status_strings() != 0 || check_create_destroy() != 0 || check_unknown_enums() != 0 ||
        check_replay() != 0)
        return 1;
    return 0;
}
