#pragma once
// The quantization wizard: Method → Parameters (what each one does, the size the model will
// have and whether it fits the devices of the current plan, the new folder; GPTQ: bits, group
// size, act-order, symmetry, damping, calibration samples and length) → Calibration data (GPTQ
// only) → Run (progress per tensor, or per layer and module for GPTQ, ETA, Cancel: nothing
// half-written; an interrupted GPTQ run resumes from `<out>.partial`) → Evaluation (perplexity
// before and after on a text) → Done ("Open it" loads the new folder).
// The pages share one QuantizeWizardState: they write their fields into it and render what it
// reports. The wizard sends its requests to the engine worker through queued signals and feeds
// the answers back into the state; the GUI never waits.
#include "enginework.h"
#include "quantizewizardstate.h"
#include "quantwork.h"

#include <QWizard>

namespace layerwise::ui {

class EngineWorker;
class QuantizeParametersPage;

class QuantizeWizard : public QWizard {
    Q_OBJECT
public:
    enum PageId { MethodPage, ParametersPage, CalibrationPage, RunPage, EvaluatePage, DonePage };
    // `source`: the model folder; `settings`: the main window's plan settings (devices, limits,
    // context) the size and verdict are judged with; `calibration`: the default text file ("" when none).
    QuantizeWizard(EngineWorker* worker, const QString& source, const PlanSettings& settings, const QString& calibration,
                   QWidget* parent = nullptr);
    ~QuantizeWizard() override;

    // What the pages share (their choices, the jobs' results).
    QuantizeWizardState* state() const { return m_state; }
    QString source() const { return m_state->source(); }
    QString calibrationDefault() const { return m_state->calibrationDefault(); }
    QString method() const { return m_state->method(); }
    const QuantMethodInfo& methodInfo() const { return m_state->methodInfo(); }
    // The request the Run page sends (from the pages' fields).
    QuantizeRequest request() const { return m_state->request(); }
    bool isRunning() const { return m_state->isRunning(); }
    QString resultFolder() const { return m_state->result().folder; }
    const QuantizeResultView& result() const { return m_state->result(); }
    const QuantizeProgressView& lastProgress() const { return m_state->progress(); }
    QString runMessage() const { return m_state->runMessage(); }
    const PlanView& previewOriginal() const { return m_state->previewOriginal(); }
    const PlanView& previewQuantized() const { return m_state->previewQuantized(); }
    double perplexityBefore() const { return m_state->before().perplexity; }
    double perplexityAfter() const { return m_state->after().perplexity; }
    // The text the Evaluation page measures perplexity on ("" when none is chosen).
    QString evaluationText() const;
    // A folder next to the source that does not exist yet ("<source>-int8", "-int8-2", ...).
    static QString suggestFolder(const QString& source, const QString& method)
    {
        return QuantizeWizardState::suggestFolder(source, method);
    }
    // GPTQ: the interrupted run of the chosen folder (`<out>.partial`; folder "" when none).
    GptqPartialRun partialRun() const { return m_state->partialRun(); }

    int nextId() const override;
    void reject() override;

    // Page actions (the buttons call them; tests too).
    void cancelRun();
    void evaluate();
    void openResult();

Q_SIGNALS:
    void requestPreview(const layerwise::ui::PlanSettings& settings, const QString& tag);
    void requestQuantize(const layerwise::ui::QuantizeRequest& request);
    void requestEvaluate(const layerwise::ui::EvalRequest& request);
    void previewShown();
    void runFinished(bool ok);
    void evaluationFinished(bool ok);
    // "Open it": the main window opens and loads the folder.
    void openRequested(const QString& folder);

private:
    void connectWorker();
    void addPages();
    void startRun();
    void updatePreview();
    void onPreview(const QString& tag, const PlanView& plan);
    void onProgress(const QuantizeProgressView& progress);
    void onQuantized(const QuantizeResultView& result);
    void onQuantizeFailed(const QString& message, bool cancelled);
    void onEvalProgress(const QString& tag, int done, int total);
    void onEvaluated(const EvalResultView& result);
    void onEvalFailed(const QString& tag, const QString& message, bool cancelled);

    EngineWorker* m_worker;
    QuantizeWizardState* m_state;
    QString m_tagPrefix;
    int m_previewSerial = 0;
    QuantizeParametersPage* m_parametersPage = nullptr;
};

} // namespace layerwise::ui
