/*
 * adapt_stream - on-device adaptation of a deployed model, through dann's
 * public C API only.
 *
 * A model trained on labelled source images only (Fashion-MNIST, grayscale)
 * is deployed where the images look different (Fashion-MNIST-M: the same
 * clothes blended over colour photographs). The app keeps classifying while
 * an adapter, on a thread of its own, adapts the model to the unlabelled
 * images it receives:
 *
 *   - the stream: the Fashion-MNIST-M training images arrive in chunks and
 *     are pushed into the adapter's ring buffer (dann_adapter_push);
 *   - the adapter's thread runs rounds of DANN steps (labelled source samples
 *     from the replay set stored in the model file + target samples from the
 *     ring), checks each round with its label-free guard and publishes the
 *     weights that pass;
 *   - the main thread classifies the target test set between chunks with a
 *     context that follows the published weights (dann_adapter_context_create).
 *
 * Every few chunks it prints the test accuracy (the only use of labels: the
 * adapter never sees any target label), the drift score and the guard's
 * events. At the end it can save the adapted model.
 *
 * Usage:
 *   adapt_stream MODEL FMNIST_M_DIR [--chunk N] [--chunks N] [--every N]
 *                [--test N] [--threads T] [--out ADAPTED_MODEL]
 *
 * MODEL: a source-only model with a replay set, e.g.
 *   dann data fmnist-m --out fm
 *   F=/usr/share/datasets/fashion-mnist
 *   dann train --arch mnist --mode source-only --steps 3000 --replay 2000 \
 *       --source-images $F/train-images-idx3-ubyte.gz \
 *       --source-labels $F/train-labels-idx1-ubyte.gz --out source.dann
 *   adapt_stream source.dann fm
 *
 * Exit status: 0 on success, 1 on any failure (with a message).
 */
#include <dann.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------- */
/* A minimal reader for the uncompressed IDX files Fashion-MNIST-M comes in.  */

typedef struct idx_u8 {
    uint8_t *data;
    size_t n;          /* first dimension */
    size_t item_bytes; /* product of the others */
} idx_u8;

static int read_idx_u8(const char *path, idx_u8 *out) {
    unsigned char head[4], dim[4];
    size_t dims[4] = {0, 1, 1, 1};
    int rank, i;
    FILE *f = fopen(path, "rb");
    memset(out, 0, sizeof *out);
    if (!f) {
        fprintf(stderr, "adapt_stream: cannot open %s\n", path);
        return 0;
    }
    if (fread(head, 1, 4, f) != 4 || head[0] != 0 || head[1] != 0 || head[2] != 0x08 ||
        head[3] < 1 || head[3] > 4) {
        fprintf(stderr, "adapt_stream: %s is not an uncompressed uint8 IDX file\n", path);
        fclose(f);
        return 0;
    }
    rank = head[3];
    for (i = 0; i < rank; ++i) {
        if (fread(dim, 1, 4, f) != 4) {
            fprintf(stderr, "adapt_stream: %s is truncated\n", path);
            fclose(f);
            return 0;
        }
        dims[i] = ((size_t)dim[0] << 24) | ((size_t)dim[1] << 16) | ((size_t)dim[2] << 8) | dim[3];
    }
    out->n = dims[0];
    out->item_bytes = dims[1] * dims[2] * dims[3];
    out->data = (uint8_t *)malloc(out->n * out->item_bytes + 1);
    if (!out->data || fread(out->data, 1, out->n * out->item_bytes, f) != out->n * out->item_bytes) {
        fprintf(stderr, "adapt_stream: cannot read %s (truncated or out of memory)\n", path);
        free(out->data);
        out->data = NULL;
        fclose(f);
        return 0;
    }
    fclose(f);
    return 1;
}

/* ------------------------------------------------------------------------- */

static int check(dann_status st, const char *what) {
    if (st == DANN_OK) return 1;
    fprintf(stderr, "adapt_stream: %s: %s (%s)\n", what, dann_status_string(st), dann_last_error());
    return 0;
}

static const char *reason_name(dann_guard_reason r) {
    switch (r) {
    case DANN_GUARD_NONE: return "-";
    case DANN_GUARD_NONFINITE: return "non-finite";
    case DANN_GUARD_REPLAY_DROP: return "replay-drop";
    case DANN_GUARD_CLASS_COLLAPSE: return "class-collapse";
    }
    return "?";
}

/* Accuracy of the published weights on the first `n` test images. */
static int test_accuracy(dann_context *ctx, const idx_u8 *images, const idx_u8 *labels,
                         size_t n, int classes, float *probs, double *accuracy) {
    const size_t batch = 250;
    size_t first, correct = 0;
    for (first = 0; first < n; first += batch) {
        size_t count = n - first < batch ? n - first : batch, i;
        dann_batch b = dann_batch_u8_hwc(images->data + first * images->item_bytes, count, 28, 28, 3);
        if (!check(dann_predict(ctx, &b, probs, count * (size_t)classes, NULL, 0), "dann_predict"))
            return 0;
        for (i = 0; i < count; ++i) {
            int k, best = 0;
            for (k = 1; k < classes; ++k)
                if (probs[i * (size_t)classes + (size_t)k] > probs[i * (size_t)classes + (size_t)best])
                    best = k;
            correct += best == labels->data[first + i];
        }
    }
    *accuracy = (double)correct / (double)n;
    return 1;
}

int main(int argc, char **argv) {
    const char *model_path, *dir, *out_path = NULL;
    size_t chunk = 500, chunks = 120, every = 10, n_test = 2000, c;
    int threads = 1, ok = 0, i;
    char path[4096];
    idx_u8 train = {0}, test = {0}, test_labels = {0};
    dann_model *model = NULL;
    dann_adapter *adapter = NULL;
    dann_context *ctx = NULL;
    dann_model_info info;
    dann_adapter_params params = dann_adapter_params_default();
    dann_adapter_stats st;
    float *probs = NULL;
    double acc = 0.0;

    if (argc < 3 || argv[1][0] == '-') {
        fprintf(stderr, "usage: adapt_stream MODEL FMNIST_M_DIR [--chunk N] [--chunks N] "
                        "[--every N] [--test N] [--threads T] [--out MODEL]\n");
        return argc == 2 && strcmp(argv[1], "--help") == 0 ? 0 : 1;
    }
    model_path = argv[1];
    dir = argv[2];
    for (i = 3; i + 1 < argc; i += 2) {
        const char *v = argv[i + 1];
        if (strcmp(argv[i], "--chunk") == 0) chunk = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--chunks") == 0) chunks = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--every") == 0) every = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--test") == 0) n_test = (size_t)strtoul(v, NULL, 10);
        else if (strcmp(argv[i], "--threads") == 0) threads = atoi(v);
        else if (strcmp(argv[i], "--out") == 0) out_path = v;
        else {
            fprintf(stderr, "adapt_stream: unknown option %s\n", argv[i]);
            return 1;
        }
    }
    if (i != argc || chunk == 0 || every == 0 || n_test == 0) {
        fprintf(stderr, "adapt_stream: options take one positive value each\n");
        return 1;
    }

    snprintf(path, sizeof path, "%s/train-images-idx4-ubyte", dir);
    if (!read_idx_u8(path, &train)) goto done;
    snprintf(path, sizeof path, "%s/t10k-images-idx4-ubyte", dir);
    if (!read_idx_u8(path, &test)) goto done;
    snprintf(path, sizeof path, "%s/t10k-labels-idx1-ubyte", dir);
    if (!read_idx_u8(path, &test_labels)) goto done;
    if (train.item_bytes != 28 * 28 * 3 || test.item_bytes != 28 * 28 * 3 ||
        test_labels.n != test.n) {
        fprintf(stderr, "adapt_stream: %s does not hold 28x28x3 Fashion-MNIST-M images\n", dir);
        goto done;
    }
    if (n_test > test.n) n_test = test.n;
    if (chunks * chunk > train.n) chunks = train.n / chunk;

    if (!check(dann_model_load(model_path, &model), "dann_model_load")) goto done;
    if (!check(dann_model_set_threads(model, threads), "dann_model_set_threads")) goto done;
    if (!check(dann_model_get_info(model, &info), "dann_model_get_info")) goto done;
    probs = (float *)malloc(250 * (size_t)info.num_classes * sizeof(float));
    if (!probs) goto done;

    params.format = DANN_INPUT_U8_HWC;
    params.channels = 3;
    params.background = 1;
    if (!check(dann_adapter_create(model, &params, &adapter), "dann_adapter_create")) goto done;
    printf("adapter: %.1f MiB allocated at creation, ring of %zu images, %zu steps per round\n",
           (double)dann_adapter_memory(adapter) / (1024.0 * 1024.0), params.capacity,
           params.steps_per_round);
    if (!check(dann_adapter_context_create(adapter, &ctx), "dann_adapter_context_create"))
        goto done;

    if (!test_accuracy(ctx, &test, &test_labels, n_test, info.num_classes, probs, &acc)) goto done;
    printf("%8s %7s %9s %6s %6s %12s %7s %9s\n", "images", "rounds", "snapshots", "guard",
           "drift", "last reason", "replay", "test acc");
    printf("%8d %7d %9d %6d %6s %12s %7s %9.4f\n", 0, 0, 0, 0, "-", "-", "-", acc);

    if (!check(dann_adapter_start(adapter), "dann_adapter_start")) goto done;
    for (c = 0; c < chunks; ++c) {
        dann_batch b = dann_batch_u8_hwc(train.data + c * chunk * train.item_bytes, chunk, 28, 28, 3);
        if (!check(dann_adapter_push(adapter, &b), "dann_adapter_push")) goto done;
        /* The app's own work: classifying, with whatever weights are published. */
        if (!test_accuracy(ctx, &test, &test_labels, n_test, info.num_classes, probs, &acc))
            goto done;
        if ((c + 1) % every == 0 || c + 1 == chunks) {
            if (!check(dann_adapter_get_stats(adapter, &st), "dann_adapter_get_stats")) goto done;
            printf("%8llu %7llu %9llu %6llu %6.3f %12s %7.4f %9.4f\n",
                   (unsigned long long)st.samples_pushed, (unsigned long long)st.rounds,
                   (unsigned long long)st.snapshots, (unsigned long long)st.guard_events,
                   (double)st.drift, reason_name(st.last_guard_reason),
                   (double)st.replay_accuracy, acc);
            fflush(stdout);
        }
    }
    if (!check(dann_adapter_stop(adapter), "the adapter's thread")) goto done;
    if (!test_accuracy(ctx, &test, &test_labels, n_test, info.num_classes, probs, &acc)) goto done;
    if (!check(dann_adapter_get_stats(adapter, &st), "dann_adapter_get_stats")) goto done;
    printf("final: test accuracy %.4f on %zu images after %llu rounds (%llu steps), "
           "%llu guard events, drift %.3f\n",
           acc, n_test, (unsigned long long)st.rounds, (unsigned long long)st.steps,
           (unsigned long long)st.guard_events, (double)st.drift);
    if (out_path) {
        if (!check(dann_adapter_get_model(adapter, model), "dann_adapter_get_model")) goto done;
        if (!check(dann_model_save(model, out_path), "dann_model_save")) goto done;
        printf("adapted model saved to %s\n", out_path);
    }
    ok = 1;

done:
    dann_context_destroy(ctx);
    dann_adapter_destroy(adapter);
    dann_model_destroy(model);
    free(probs);
    free(train.data);
    free(test.data);
    free(test_labels.data);
    return ok ? 0 : 1;
}
