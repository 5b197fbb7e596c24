"""The compute plane: what really runs the work that the emulator only records.

- container_runtime.py: the container runtime interface;
- docker.py, process.py: the two runtimes; runtimes.py: their explicit table (`docker`, `process`, `auto`);
- training.py: SageMaker training jobs (download channels, run `train`, upload the model);
- endpoints.py: SageMaker endpoints (`serve` behind a name, zero-drop updates, invocations);
- s3io.py: S3 transfers as SageMaker's agents make them;
- plane.py: `ComputePlane`, which the running emulator's context (harness/context.py) attaches.
"""
