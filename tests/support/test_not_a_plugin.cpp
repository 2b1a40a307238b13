// TEST-ONLY: a shared library without the task entry point; the loader must refuse it.
extern "C" __attribute__((visibility("default"))) int not_a_task(void) { return 42; }
