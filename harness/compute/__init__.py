"""The compute plane: what really runs the work that the emulator only records.

- runtime.py: the container runtime interface and its explicit table (`docker`, `process`, `auto`);
- docker.py, process.py: the two runtimes;
- training.py: SageMaker training jobs (download channels, run `train`, upload the model);
- endpoints.py: SageMaker endpoints (`serve` behind a name, zero-drop updates, invocations);
- s3io.py: S3 transfers as SageMaker's agents make them;
- plane.py: `ComputePlane`, which the running emulator's context (harness/context.py) attaches.
"""
