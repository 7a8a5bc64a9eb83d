#pragma once
// The pages of the quantization wizard (private to its sources). Their widgets belong to the
// wizard, which reads them to build the request.
#include <QWizardPage>

namespace layerwise::ui {

class QuantizeWizard;

class QuantizeMethodPage : public QWizardPage {
public:
    explicit QuantizeMethodPage(QuantizeWizard* wizard);
    bool isComplete() const override;

private:
    void showExplanation();
    QuantizeWizard* m_wizard;
};

class QuantizeParametersPage : public QWizardPage {
public:
    explicit QuantizeParametersPage(QuantizeWizard* wizard);
    void initializePage() override;
    bool validatePage() override; // the new folder must not exist

private:
    QuantizeWizard* m_wizard;
};

class QuantizeCalibrationPage : public QWizardPage {
public:
    explicit QuantizeCalibrationPage(QuantizeWizard* wizard);
    void initializePage() override;
    bool isComplete() const override;

private:
    QuantizeWizard* m_wizard;
};

class QuantizeRunPage : public QWizardPage {
public:
    explicit QuantizeRunPage(QuantizeWizard* wizard);
    void initializePage() override; // starts the job
    void cleanupPage() override;    // Back cancels it
    bool isComplete() const override;
    void notifyChanged() { Q_EMIT completeChanged(); }

private:
    QuantizeWizard* m_wizard;
};

class QuantizeEvaluatePage : public QWizardPage {
public:
    explicit QuantizeEvaluatePage(QuantizeWizard* wizard);
    void initializePage() override;
    bool isComplete() const override;
    void notifyChanged() { Q_EMIT completeChanged(); }

private:
    QuantizeWizard* m_wizard;
};

class QuantizeDonePage : public QWizardPage {
public:
    explicit QuantizeDonePage(QuantizeWizard* wizard);
    void initializePage() override;

private:
    QuantizeWizard* m_wizard;
};

} // namespace layerwise::ui
