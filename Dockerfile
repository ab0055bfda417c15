# Bring-your-own-container image for Amazon SageMaker training jobs, real-time
# endpoints and batch transform: trains with SageMaker's Object2Vec channels and
# hyperparameters, and serves with its protocol (GET /ping, POST /invocations with
# application/json or application/jsonlines).
#
# Training: SageMaker starts the container as `docker run <image> train`, which runs
# `skobject2vec train` with no path flags: it reads the channels from SM_CHANNEL_<NAME>
# or /opt/ml/input/data/<name>/ (train, validation, test, auxiliary, and model for
# incremental training), the hyperparameters from SM_HPS or
# /opt/ml/input/config/hyperparameters.json, writes the artifact to /opt/ml/model
# (SM_MODEL_DIR), prints `#quality_metric` lines as each epoch ends, and on failure
# writes the message to /opt/ml/output/failure.
#
# Serving, SageMaker's container contract, and how this image meets it:
#   * SageMaker starts the container as `docker run <image> serve`: the entrypoint
#     below accepts that argument and runs `skobject2vec serve`.
#   * The model artifact (model.tar.gz holding config.json and model.safetensors,
#     i.e. the folder written by `estimator.save(dir)`, tarred with
#     `tar -czf model.tar.gz -C dir .`) is unpacked into /opt/ml/model, the
#     default of --model-dir (SM_MODEL_DIR overrides it). Nothing is unpickled.
#   * The server listens on port 8080 (SAGEMAKER_BIND_TO_PORT overrides it) on all
#     interfaces of the container, as SageMaker's network requires.
#   * Request bodies up to 6 MB (SageMaker's limit) are accepted; larger ones get 413.
#   * INFERENCE_PREFERRED_MODE=classification|embedding is honoured (both modes work).
#   * SAGEMAKER_MODEL_SERVER_WORKERS sets the number of server processes (default 1;
#     each loads its own copy of the model).
#
# Build and try it locally:
#   docker build -t skobject2vec-serve .
#   docker run --rm -p 127.0.0.1:8080:8080 -v "$PWD/my-model:/opt/ml/model:ro" skobject2vec-serve serve
#   curl -s 127.0.0.1:8080/ping
#   curl -s 127.0.0.1:8080/invocations -H 'content-type: application/json' \
#        -d '{"instances": [{"in0": [1, 2, 3], "in1": [4, 5]}]}'
# Then push it to ECR and create a SageMaker Model with this image and the
# model.tar.gz on S3 (sagemaker.model.Model(image_uri=..., model_data=...)).
#
# The CPU build of PyTorch keeps the image small; for GPU instances, start from an
# image with CUDA PyTorch instead (e.g. pytorch/pytorch:*-cuda*-runtime) and drop
# the --index-url line.

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

# Pinned to the version the test suite runs against (Makefile).
RUN pip install --index-url https://download.pytorch.org/whl/cpu "torch==2.13.0"

WORKDIR /opt/skobject2vec
COPY pyproject.toml README.md ./
COPY skobject2vec ./skobject2vec
RUN pip install ".[serve]"

EXPOSE 8080
# `train ARGS` -> skobject2vec train ARGS; `serve ARGS` (or nothing) -> the endpoint;
# any other command (predict, embed, --version) is passed to skobject2vec as is.
ENTRYPOINT ["/bin/sh", "-c", "case \"$1\" in train) shift; exec skobject2vec train \"$@\";; serve|'') [ $# -gt 0 ] && shift; exec skobject2vec serve --host 0.0.0.0 --workers \"${SAGEMAKER_MODEL_SERVER_WORKERS:-1}\" \"$@\";; *) exec skobject2vec \"$@\";; esac", "sagemaker-entrypoint"]
CMD ["serve"]
