// Factories for the built-in tasks (registered by Registry::BuiltIn()).
#pragma once

#include <memory>

#include "sparecycles/tasks/task.hpp"

namespace sparecycles::tasks {

std::unique_ptr<Task> MakePrimesTask();      // primes: count primes in [from, to)
std::unique_ptr<Task> MakePiTask();          // pi: Monte Carlo estimate of pi
std::unique_ptr<Task> MakeMandelbrotTask();  // mandelbrot: W x H image in tiles -> PNG or PGM
std::unique_ptr<Task>
MakeHashSearchTask();  // hashsearch: nonces whose BLAKE2b has k leading zero bits
std::unique_ptr<Task>
MakeWordFreqTask();                    // wordfreq: word frequencies of an input file (data task)
std::unique_ptr<Task> MakeSpinTask();  // spin: units that busy-wait a fixed time (benchmarks)

}  // namespace sparecycles::tasks
