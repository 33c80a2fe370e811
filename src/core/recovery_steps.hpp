// The recovery's step table: every step a plan can hold, in the order they run.
// Its own module so that the journal (recovery_journal) can check a plan it loads
// against it without depending on the engine (recovery) that runs the steps.
#pragma once

#include <string>
#include <vector>

namespace ur
{

// The containers phase 2 waits for, in order (prior art 1.5, phase 2 step 2).
extern const std::vector<std::string> kWaitContainers;
// The static pod operators redeployed, in order (prior art 4.5).
extern const std::vector<std::string> kRedeploy;

// The step plan in order (names as in the journal) and the stage each belongs to.
struct StepDef {
    const char* name;
    const char* stage; // "restore-files" | "restore-cluster" | "redeploy"
    int phase;
    bool live_only; // skipped offline (nothing runs there)
    const char* title;
};
const std::vector<StepDef>& recovery_steps();
const StepDef* find_step_def(const std::string& name);

} // namespace ur
