#pragma once
// What the quantization wizard's pages share: the model it was opened on, the choices the pages
// make (method, parameters, folders, texts) and what the jobs report back (previews, progress,
// result, perplexities). Pages write their edits here and render from here; the wizard turns
// the state into requests for the engine worker and feeds the worker's answers back into it.
#include "enginework.h"
#include "quantwork.h"

#include <QObject>
#include <QVector>

namespace layerwise::ui {

// One quantization method as the Method page lists it. A method whose engine is missing is
// listed disabled, with the reason as its tooltip.
struct QuantMethodInfo {
    QString id;          // "int8", "nf4", "fp4", "gptq"
    QString label;
    QString explanation;
    bool available = true;
    QString unavailableReason;
    bool fourBit = false;         // double quantization and the compute dtype apply
    bool needsCalibration = false; // GPTQ
};
QVector<QuantMethodInfo> quantMethods();

// The fields of the pages, as values. The defaults are the widgets' initial values
// (AutoGPTQ's defaults for GPTQ).
struct QuantizeChoices {
    QString method;                 // a QuantMethodInfo id
    // bitsandbytes methods
    bool doubleQuant = false;
    QString computeDtype = QStringLiteral("auto");
    QString skipModules;            // as typed: comma-separated
    // GPTQ
    int bits = 4;
    int groupSize = 128;
    bool descAct = false;
    bool sym = true;
    double dampPercent = 0.01;      // a fraction (the page shows per cent)
    int samples = 128;
    int seqLen = 512;
    bool resume = true;             // resume an interrupted run of the folder rather than restart
    bool defaultCalibration = true; // the default corpus, else `calibrationFile`
    QString calibrationFile;
    // The new folder
    QString out;
    // Evaluation
    bool defaultEvalText = true;    // the end of the default corpus, else `evalFile`
    QString evalFile;
    int evalContext = 0;
    int evalStride = 0;
};

class QuantizeWizardState : public QObject {
    Q_OBJECT
public:
    // `source`: the model folder; `settings`: the plan settings the size and verdict are judged
    // with; `calibration`: the default text file ("" when none).
    QuantizeWizardState(const QString& source, const PlanSettings& settings, const QString& calibration,
                        QObject* parent = nullptr);

    // ---- What the wizard was opened on ----
    QString source() const { return m_source; }
    const PlanSettings& planSettings() const { return m_settings; }
    QString calibrationDefault() const { return m_calibration; }
    bool hasDefaultCalibration() const;
    int maxPositions() const { return m_maxPositions; } // the source's max_position_embeddings (0: unknown)
    const QVector<QuantMethodInfo>& methods() const { return m_methods; }

    // ---- The pages' choices ----
    const QuantizeChoices& choices() const { return m_choices; }
    void setChoices(const QuantizeChoices& choices); // choicesChanged
    QString method() const;                    // the chosen method's id (the first one when none is)
    const QuantMethodInfo& methodInfo() const; // the chosen method
    // The quantization job the choices describe.
    QuantizeRequest request() const;
    // GPTQ: the interrupted run of the chosen folder (`<out>.partial`; folder "" when none).
    GptqPartialRun partialRun() const;
    // The text the Evaluation page measures perplexity on ("" when none is chosen or readable):
    // the last `defaultEvalChars` characters of the default corpus, or the chosen file.
    QString evaluationText() const;
    static constexpr qint64 defaultEvalChars = 3000;
    // The plan's quantization name for the chosen method ("int8", "nf4-dq", "gptq-4bit-128g").
    QString previewQuant() const;
    // A folder next to `source` that does not exist yet ("<source>-int8", "-int8-2", ...).
    static QString suggestFolder(const QString& source, const QString& method);

    // ---- The size preview ----
    const PlanView& previewOriginal() const { return m_planOriginal; }
    const PlanView& previewQuantized() const { return m_planQuantized; }
    void startPreview();                                  // previewRequested
    void setPreview(bool quantized, const PlanView& plan); // previewChanged

    // ---- The quantization run ----
    bool isRunning() const { return m_running; }
    bool runSucceeded() const { return m_runOk; }
    QString runMessage() const { return m_runMessage; }
    const QuantizeProgressView& progress() const { return m_progress; }
    const QuantizeResultView& result() const { return m_result; }
    void startRun();                                  // runStarted
    void reportCancelling();                          // runCancelling: the job was asked to stop
    void setProgress(const QuantizeProgressView& p);  // progressChanged
    void finishRun(const QuantizeResultView& result); // runFinished(true)
    void failRun(const QString& message, bool cancelled); // runFinished(false)
    bool runWasCancelled() const { return m_runCancelled; }

    // ---- The evaluation (perplexity before and after) ----
    bool isEvaluating() const { return m_evalPending > 0; }
    const EvalResultView& before() const { return m_before; }
    const EvalResultView& after() const { return m_after; }
    QString evaluationMessage() const { return m_evalMessage; } // "" unless it failed
    void startEvaluation(int jobs);                      // evaluationStarted
    void setEvaluationProgress(bool after, int done, int total); // evaluationProgress
    // One job's answer; the last one ends the evaluation (evaluationFinished).
    void addEvaluation(const EvalResultView& result);
    void addEvaluationFailure(const QString& message);
    void reportMissingEvaluationText(); // evaluationTextMissing: nothing was started

Q_SIGNALS:
    void choicesChanged();
    void previewRequested();
    void previewChanged();
    void runStarted();
    void runCancelling();
    void progressChanged();
    void runFinished(bool ok);
    void evaluationStarted();
    void evaluationProgress(bool after, int done, int total);
    void evaluationFinished(bool ok);
    void evaluationTextMissing();

private:
    void evaluationAnswered();

    QString m_source;
    PlanSettings m_settings;
    QString m_calibration;
    int m_maxPositions = 0;
    QVector<QuantMethodInfo> m_methods;
    QuantizeChoices m_choices;
    PlanView m_planOriginal, m_planQuantized;
    bool m_running = false;
    bool m_runOk = false;
    bool m_runCancelled = false;
    QString m_runMessage;
    QuantizeProgressView m_progress;
    QuantizeResultView m_result;
    EvalResultView m_before, m_after;
    QString m_evalMessage;
    int m_evalPending = 0;
};

} // namespace layerwise::ui
